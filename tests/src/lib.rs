//! Helpers shared by the black-box tests: start the real `sidecar` binary on a
//! temporary socket and workspace, and speak HTTP/1.1 to it over the socket.
//!
//! The binary and plugins come from `make build` (`target/release/sidecar`,
//! `target/release/plugins`). `SIDECAR_BIN` and `SIDECAR_PLUGINS_DIR` override them.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository's top directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The sidecar binary under test.
pub fn binary() -> PathBuf {
    std::env::var_os("SIDECAR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/sidecar"))
}

/// The directory of built plugins.
pub fn plugins_dir() -> PathBuf {
    std::env::var_os("SIDECAR_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/plugins"))
}

/// The hostile test plugin built by scripts/build-plugins.
pub fn hostile_plugin() -> PathBuf {
    repo().join("target/test-plugins/hostile.wasm")
}

/// How to start a sidecar.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// A plugins directory (default: a copy-free reference to the built plugins).
    pub plugins_dir: Option<PathBuf>,
    /// A languages.toml (default: the repository's).
    pub languages: Option<PathBuf>,
    /// Leave the scratch root to the sidecar's default (shared with other sidecars)
    /// instead of a `scratch` dir in the test dir.
    pub default_scratch: bool,
    /// Start the sidecar with this soft limit on open files (as container runtimes
    /// start processes with 1024).
    pub open_files_soft_limit: Option<u64>,
    /// And with this hard limit (which it cannot raise).
    pub open_files_hard_limit: Option<u64>,
    /// Start the sidecar with these signals ignored (as `nohup cmd &` starts it with
    /// SIGHUP, SIGINT and SIGQUIT ignored).
    pub ignored_signals: Vec<libc::c_int>,
}

impl Options {
    /// A sidecar with these environment variables set.
    pub fn with_env(pairs: &[(&str, &str)]) -> Options {
        Options {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Options::default()
        }
    }

    /// A sidecar without cgroups (executions get a uid each, swept afterwards), with a
    /// uid range of its own: tests run such sidecars side by side, and one's sweep
    /// would kill the other's processes running as the same uid.
    pub fn without_cgroups() -> Options {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let slot = (std::process::id() % 4096) * 16 + NEXT.fetch_add(1, Ordering::Relaxed) % 16;
        Options {
            env: vec![
                ("SIDECAR_NO_CGROUPS".into(), "1".into()),
                (
                    "SIDECAR_UID_POOL".into(),
                    format!("{}:512", 300_000 + slot * 512),
                ),
            ],
            ..Options::default()
        }
    }
}

/// A running sidecar, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Sidecar {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub workspace: PathBuf,
    pub stderr_log: PathBuf,
}

impl Sidecar {
    pub fn start() -> Sidecar {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Sidecar {
        Self::start_in(test_dir(), opts)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sidecar exited at start-up ({status}):\n{}", self.log());
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sidecar did not listen within 60 s:\n{}", self.log());
    }

    /// What the sidecar logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(&self.socket, method, path, headers, body)
    }

    /// POSTs JSON and parses the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        let v = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", r.text()));
        (r.status, v)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self.request("GET", path, &[], b"");
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    /// POST /bash, returning the NDJSON lines.
    pub fn bash(&self, body: &Value) -> Vec<Value> {
        let r = self.request(
            "POST",
            "/bash",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the sidecar.
    pub fn signal(&self, sig: i32) {
        unsafe { libc_kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// One compile cache for every test, so plugins compile once per test run.
fn shared_cache() -> PathBuf {
    repo().join("target/test-cache")
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Writes the request head and body to any stream.
pub fn write_request(
    stream: &mut impl Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
}

/// Reads a whole response (Connection: close), decoding chunked bodies.
pub fn read_response(stream: impl Read) -> Response {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk);
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    Response {
        status,
        headers,
        body,
    }
}

/// One request over a Unix socket.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    write_request(&mut stream, method, path, headers, body);
    read_response(stream)
}

/// A minimal HTTP/1.1 keep-alive client over the Unix socket.
pub struct KeepAlive {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl KeepAlive {
    pub fn connect(socket: &Path) -> KeepAlive {
        let s = UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        KeepAlive {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    /// POSTs `body` to `path` on the open connection; returns the status and body.
    pub fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.writer.write_all(&req).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut len = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = Some(v.trim().parse::<usize>().unwrap());
                }
            }
        }
        let mut buf = vec![0; len.expect("a content-length (keep-alive needs one)")];
        self.reader.read_exact(&mut buf).unwrap();
        (status, buf)
    }
}

/// Whether the sidecar reports protection `name` (e.g. `uid_drop`, `kill_all`) as
/// active in /health; when not, prints a visible skip with the reason it gives.
pub fn protection_active(sidecar: &Sidecar, name: &str) -> bool {
    let (_, health) = sidecar.get("/health");
    let entry = health["protections"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name).cloned())
        .unwrap_or_default();
    let active = entry["active"] == true;
    if !active {
        eprintln!("SKIPPED: protection {name} is not active here: {entry}");
    }
    active
}

/// Whether a language's toolchain is here. Missing: a visible skip locally, a failure
/// when `SIDECAR_REQUIRE_ALL_LANGUAGES=1` (CI).
pub fn language_available(sidecar: &Sidecar, code: &str) -> bool {
    let (_, langs) = sidecar.get("/languages");
    let entry = langs["languages"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["code"] == code).cloned())
        .unwrap_or_else(|| panic!("language {code} is not served: {langs}"));
    if entry["toolchainAvailable"] == true {
        return true;
    }
    let why = format!(
        "SKIPPED language {code}: toolchain missing ({})",
        entry["missingProgram"]
    );
    if std::env::var("SIDECAR_REQUIRE_ALL_LANGUAGES").is_ok_and(|v| v == "1") {
        panic!("{why}; CI requires every language");
    }
    eprintln!("{why}");
    false
}

/// Processes whose command line contains `marker` (to prove nothing was left behind).
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(format!("{}: {cmd}", name.to_string_lossy()));
            }
        }
    }
    found
}

/// Waits until no process mentions `marker`, up to `within`; returns the leftovers.
pub fn wait_no_processes(marker: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let left = processes_with(marker);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Helpers for tests of start-up, sockets, TCP and streaming (appended).

/// A fresh directory for [`Sidecar::start_in`] / [`serve_command`].
pub fn test_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sidecar-test-")
        .tempdir()
        .unwrap()
}

/// The `sidecar serve` command the harness runs, set up in `dir` exactly as
/// [`Sidecar::start_with`] does (socket `dir/run/sidecar.sock`, workspace
/// `dir/workspace`, log `dir/stderr.log`), but not started: for tests of start-up
/// failures.
pub fn serve_command(dir: &Path, opts: &Options) -> Command {
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .args(&opts.args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SOCKET_PATH", dir.join("run/sidecar.sock"))
        .env("WORKSPACE_ROOT", &workspace)
        .env(
            "SIDECAR_PLUGINS_DIR",
            opts.plugins_dir.clone().unwrap_or_else(plugins_dir),
        )
        .env(
            "SIDECAR_LANGUAGES",
            opts.languages
                .clone()
                .unwrap_or_else(|| repo().join("languages.toml")),
        )
        .env("SIDECAR_CACHE_DIR", shared_cache())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    if !opts.default_scratch {
        cmd.env("SIDECAR_SCRATCH_DIR", dir.join("scratch"));
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    let (soft, hard) = (opts.open_files_soft_limit, opts.open_files_hard_limit);
    if !opts.ignored_signals.is_empty() {
        use std::os::unix::process::CommandExt;
        let ignored = opts.ignored_signals.clone();
        // SAFETY: only signal(2), async-signal-safe, in the forked child (its
        // dispositions of SIG_IGN survive the exec).
        unsafe {
            cmd.pre_exec(move || {
                for &signal in &ignored {
                    libc::signal(signal, libc::SIG_IGN);
                }
                Ok(())
            });
        }
    }
    if soft.is_some() || hard.is_some() {
        use std::os::unix::process::CommandExt;
        // SAFETY: only getrlimit and setrlimit, async-signal-safe, in the forked child.
        unsafe {
            cmd.pre_exec(move || {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                limit.rlim_max = hard.unwrap_or(limit.rlim_max).min(limit.rlim_max);
                limit.rlim_cur = soft.unwrap_or(limit.rlim_cur).min(limit.rlim_max);
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

/// Runs `cmd` (from [`serve_command`]) expecting it to exit by itself within
/// `within`; returns its status, or `None` if it was still running (then killed).
pub fn run_until_exit(mut cmd: Command, within: Duration) -> Option<std::process::ExitStatus> {
    let mut child = cmd.spawn().expect("start the sidecar binary");
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Sidecar {
    /// Like [`Sidecar::start_with`], in a directory the test prepared first (for
    /// example a stale socket at `dir/run/sidecar.sock`).
    pub fn start_in(dir: tempfile::TempDir, opts: Options) -> Sidecar {
        let child = serve_command(dir.path(), &opts)
            .spawn()
            .expect("start the sidecar binary (run `make build` first)");
        let socket = dir.path().join("run/sidecar.sock");
        let workspace = dir.path().join("workspace");
        let stderr_log = dir.path().join("stderr.log");
        let mut sidecar = Sidecar {
            child,
            dir,
            socket,
            workspace,
            stderr_log,
        };
        sidecar.wait_ready();
        sidecar
    }
}

/// The output a /bash stream carried: its `delta` lines' data, in order.
pub fn streamed_output(lines: &[Value]) -> String {
    lines
        .iter()
        .filter(|l| l["type"] == "delta")
        .map(|l| l["data"].as_str().unwrap())
        .collect()
}

/// Parses NDJSON text into values.
pub fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line ({e}): {l}")))
        .collect()
}

/// A number unique to this process and call, to make commands recognisable by
/// [`processes_with`] (e.g. `sleep 30.<marker>`): digits only.
pub fn unique_marker() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 1000);
    format!("{}{:03}{:03}", std::process::id(), n % 1000, nanos)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- Helpers for the /execute tests and benchmarks -------------------------------------

impl Sidecar {
    /// The sidecar's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// POST /execute, asserting a 200 answer; returns the response body.
    pub fn execute(&self, body: &Value) -> Value {
        let (status, v) = self.post("/execute", body);
        assert_eq!(status, 200, "/execute {body}: {v}");
        v
    }
}

/// Runs `f` and measures how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// A `multipart/form-data` body of `(field, file name, content)` parts (no file name: a
/// plain field). Returns the content type (with its boundary) and the body.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "sidecar-test-boundary-7d3f9a";
    let mut body = Vec::new();
    for (field, file_name, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file_name {
            Some(name) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`...).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Runs the `sidecar` binary with `args` (not `serve`) and a clean environment: `PATH`,
/// the shared compile cache, then `env`. Returns its output.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SIDECAR_CACHE_DIR", shared_cache())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .expect("run the sidecar binary (run `make build` first)")
}

/// Calls `f` every 20 ms until it returns `Some`, for at most `within`.
pub fn wait_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `wasm` (a module or a component) with a custom section appended: the same code with
/// other bytes (so another sha256), e.g. to tell two copies of a plugin apart.
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

/// Writes `bytes` to `dir/name` atomically: a hidden temporary file, then a rename.
pub fn write_renamed(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

impl Sidecar {
    /// POSTs JSON, asserts the success envelope (200, exactly `{"ok": true, "result":
    /// …}`) and returns `result`.
    pub fn ok(&self, path: &str, body: &Value) -> Value {
        let (status, v) = self.post(path, body);
        assert_eq!(status, 200, "POST {path} {body}: {v}");
        assert_eq!(v["ok"], true, "POST {path} {body}: {v}");
        let keys: Vec<&String> = v.as_object().expect("an object").keys().collect();
        assert_eq!(keys.len(), 2, "envelope is exactly {{ok, result}}: {v}");
        v["result"].clone()
    }

    /// POSTs JSON, asserts the error envelope (exactly `{"ok": false, "error":
    /// "<non-empty>"}`) and returns the status and the message.
    pub fn fails(&self, path: &str, body: &Value) -> (u16, String) {
        let (status, v) = self.post(path, body);
        assert_error_envelope(&v);
        (status, v["error"].as_str().unwrap().to_string())
    }
}

/// Asserts that `v` is exactly `{"ok": false, "error": "<non-empty string>"}`.
pub fn assert_error_envelope(v: &Value) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(obj.len(), 2, "envelope is exactly {{ok, error}}: {v}");
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| !e.trim().is_empty()),
        "error is a non-empty string: {v}"
    );
}

/// Like [`request`], but sends the head and the body in one write, so a server that
/// answers from the head alone (404, 405, 401, 415…) and closes cannot make the
/// client's second write fail with EPIPE. For small bodies.
pub fn request_in_one_write(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut buf = Vec::new();
    write_request(&mut buf, method, path, headers, body);
    let mut stream =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    stream.write_all(&buf).unwrap();
    read_response(stream)
}
