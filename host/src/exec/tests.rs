//! Tests of the executor with real processes: limits, isolation, kill-all, cancellation.
//! Tests that need root, cgroups or a network namespace print why and return when those
//! are unavailable.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::*;

const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let sandbox = Sandbox::detect(SandboxSettings::default());
        eprintln!("sandbox: {}", sandbox.summary());
        sandbox
    })
}

fn spec(argv: &[&str]) -> ProcessSpec {
    let mut spec = ProcessSpec::new(argv.iter().map(|s| s.to_string()).collect(), "/tmp");
    spec.env = vec![("PATH".into(), PATH.into())];
    spec.timeout = Duration::from_secs(10);
    spec
}

fn sh(script: &str) -> ProcessSpec {
    spec(&["sh", "-c", script])
}

async fn run_ok(sandbox: &Sandbox, spec: ProcessSpec) -> ProcessOutcome {
    run(sandbox, spec, None).await.expect("run")
}

/// A `sleep` duration no other process uses: its argv marks the processes of one test.
fn marker(base: u32) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{base}.{:03}{:03}{:03}",
        std::process::id() % 1000,
        n % 1000,
        nanos % 1000
    )
}

/// Live (not zombie) processes whose command line contains `marker`.
fn live_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(marker) {
            continue;
        }
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie {
            found.push(pid);
        }
    }
    found
}

/// Waits (a little) until no live process carries `marker`.
async fn none_left(marker: &str) -> bool {
    let deadline = Instant::now() + Duration::from_millis(1000);
    loop {
        if live_with(marker).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!("left behind: {:?}", live_with(marker));
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_root() -> bool {
    // SAFETY: plain getter.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn echo() {
    let out = run_ok(sandbox(), spec(&["echo", "hello", "world"])).await;
    assert_eq!(out.stdout, "hello world\n");
    assert_eq!(out.stderr, "");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.signal, None);
    assert!(!out.timed_out && !out.oom_killed && !out.stdout_truncated);
    assert_eq!(out.spawn_error, None);
}

#[tokio::test]
async fn exit_code_and_stderr() {
    let out = run_ok(sandbox(), sh("echo oops >&2; exit 3")).await;
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.stderr, "oops\n");
}

#[tokio::test]
async fn killed_by_signal() {
    let out = run_ok(sandbox(), sh("kill -SEGV $$")).await;
    assert_eq!(out.exit_code, None);
    assert_eq!(out.signal, Some(libc::SIGSEGV));
}

#[tokio::test]
async fn environment_is_exactly_the_specs() {
    std::env::set_var("SIDECAR_EXEC_TEST_SECRET", "hunter2");
    let mut s = spec(&["env"]);
    s.env.push(("A".into(), "1".into()));
    let out = run_ok(sandbox(), s).await;
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["A=1".to_string(), format!("PATH={PATH}")]);
    assert!(!out.stdout.contains("hunter2"));
}

#[tokio::test]
async fn missing_program_is_named() {
    match run(
        sandbox(),
        spec(&["no-such-toolchain-xyz", "--version"]),
        None,
    )
    .await
    {
        Err(ExecError::NotFound(p)) => assert_eq!(p, "no-such-toolchain-xyz"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // Resolved through the spec's PATH, not ours.
    let mut s = spec(&["sh", "-c", "true"]);
    s.env = vec![("PATH".into(), "/nonexistent".into())];
    assert!(matches!(
        run(sandbox(), s, None).await,
        Err(ExecError::NotFound(_))
    ));
    // An empty argv and a missing working directory are the caller's fault.
    let mut s = spec(&["true"]);
    s.argv.clear();
    assert!(matches!(
        run(sandbox(), s, None).await,
        Err(ExecError::InvalidSpec(_))
    ));
    let mut s = spec(&["true"]);
    s.cwd = "/nonexistent-dir-xyz".into();
    assert!(matches!(
        run(sandbox(), s, None).await,
        Err(ExecError::InvalidSpec(_))
    ));
}

#[tokio::test]
async fn unexecutable_program_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut s = spec(&[script.to_str().unwrap()]);
    s.cwd = dir.path().into();
    let out = run_ok(sandbox(), s).await;
    assert!(out.spawn_error.is_some(), "{out:?}");
    assert_eq!(out.exit_code, None);
}

#[tokio::test]
async fn large_stdin_and_outputs_concurrently() {
    // 10 MB in, 10 MB out on each stream at once: no deadlock.
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopq\n";
    let data = line.repeat(10 * 1024 * 1024 / line.len());
    let mut s = sh("tee /dev/stderr");
    s.stdin = Some(data.clone().into_bytes());
    s.output_cap = 16 << 20;
    s.timeout = Duration::from_secs(30);
    let out = run_ok(sandbox(), s).await;
    assert_eq!(out.exit_code, Some(0), "{}", out.stderr.len());
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data && out.stderr == data);
    assert!(!out.stdout_truncated && !out.stderr_truncated);
}

#[tokio::test]
async fn stdin_not_read_does_not_hang() {
    let mut s = sh("echo ignored");
    s.stdin = Some(vec![b'x'; 8 << 20]);
    let out = run_ok(sandbox(), s).await;
    assert_eq!(out.stdout, "ignored\n");
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test]
async fn no_stdin_reads_dev_null() {
    let out = run_ok(sandbox(), sh("cat; echo end")).await;
    assert_eq!(out.stdout, "end\n");
}

#[tokio::test]
async fn output_cap_truncates_and_timeout_still_bounds() {
    let mut s = sh("yes out & yes err >&2");
    s.output_cap = 1 << 20;
    s.timeout = Duration::from_secs(1);
    let start = Instant::now();
    let out = run_ok(sandbox(), s).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(out.timed_out);
    assert!(out.stdout_truncated && out.stderr_truncated);
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(out.stdout.starts_with("out\nout\n"));
    assert!(out.stderr.starts_with("err\n"));
    assert!(out.stdout_bytes > 1 << 20);
}

#[tokio::test]
async fn streams_chunks_to_the_sink() {
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(16);
    let collect = tokio::spawn(async move {
        let (mut out, mut err) = (String::new(), String::new());
        while let Some(chunk) = rx.recv().await {
            match chunk.stream {
                Stream::Stdout => out.push_str(&chunk.data),
                Stream::Stderr => err.push_str(&chunk.data),
            }
        }
        (out, err)
    });
    let mut s = sh("printf 'h\\303'; sleep 0.05; printf '\\251llo\\n'; echo e >&2; seq 1 20000");
    s.output_cap = 1000;
    let out = run(sandbox(), s, Some(tx)).await.unwrap();
    let (streamed_out, streamed_err) = collect.await.unwrap();
    assert!(out.stdout.starts_with("héllo\n1\n2\n"));
    assert_eq!(
        streamed_out, out.stdout,
        "the sink gets what is kept, no more"
    );
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout_truncated);
    assert_eq!(streamed_err, "e\n");
}

#[tokio::test]
async fn output_past_the_pipes_before_the_exit_is_all_read() {
    // Without a sink the pipes are read only after the exit (or OUTPUT_DEFER): more
    // than they hold must still all arrive, in order, and nothing may hang.
    let mut s = sh("seq 1 400000; seq 1 400000 >&2");
    s.output_cap = 8 << 20;
    let out = run_ok(sandbox(), s).await;
    let expected: String = (1..=400_000).map(|n| format!("{n}\n")).collect();
    assert!(expected.len() > 2 << 20);
    assert_eq!(out.exit_code, Some(0));
    assert!(!out.timed_out);
    assert!(out.stdout == expected && out.stderr == expected);
}

#[tokio::test]
async fn output_around_the_deferral_keeps_its_order() {
    let s = sh("printf a; printf b >&2; sleep 0.2; printf c; printf d >&2; sleep 0.1; printf e");
    let out = run_ok(sandbox(), s).await;
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("ace", "bd"));
}

/// The capacity of the child's stdout pipe, as the child sees it.
async fn child_stdout_pipe_size(sink: Option<mpsc::Sender<OutputChunk>>) -> String {
    let s = spec(&[
        "python3",
        "-c",
        "import fcntl; print(fcntl.fcntl(1, fcntl.F_GETPIPE_SZ))",
    ]);
    let out = run(sandbox(), s, sink).await.expect("run");
    assert_eq!(out.exit_code, Some(0), "{}", out.stderr);
    out.stdout.trim().to_string()
}

#[tokio::test]
async fn unstreamed_output_gets_big_pipes() {
    let expected = if sandbox().is_root() {
        1 << 20
    } else {
        256 << 10
    };
    assert_eq!(child_stdout_pipe_size(None).await, expected.to_string());
    // Streamed output is read as it comes: the default pipe is enough.
    let (tx, mut rx) = mpsc::channel::<OutputChunk>(16);
    let drained = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    assert_eq!(child_stdout_pipe_size(Some(tx)).await, "65536");
    drained.await.unwrap();
}

#[tokio::test]
async fn timeout_kills_backgrounded_grandchild() {
    let m = marker(30);
    let mut s = sh(&format!("(sleep {m}; echo x) & sleep 2{m}"));
    s.timeout = Duration::from_secs(1);
    let start = Instant::now();
    let out = run_ok(sandbox(), s).await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(out.timed_out);
    assert_eq!(out.signal, Some(libc::SIGKILL));
    assert!(none_left(&m).await);
}

#[tokio::test]
async fn main_exit_does_not_wait_for_grandchild_holding_pipes() {
    let m = marker(31);
    let out = run_ok(sandbox(), sh(&format!("(sleep {m}; echo x) & echo done"))).await;
    assert!(out.duration < Duration::from_secs(1));
    assert_eq!(out.stdout, "done\n");
    assert_eq!(out.exit_code, Some(0));
    assert!(!out.timed_out);
    assert!(none_left(&m).await);
}

#[tokio::test]
async fn stopped_process_group_times_out() {
    let mut s = sh("kill -STOP 0");
    s.timeout = Duration::from_secs(1);
    let start = Instant::now();
    let out = run_ok(sandbox(), s).await;
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(out.timed_out);
}

async fn setsid_daemon_is_killed_in(sandbox: &Sandbox) {
    let m = marker(40);
    let script =
        format!("setsid sh -c 'sleep {m}' </dev/null >/dev/null 2>&1 & sleep 0.2; echo started");
    let mut s = sh(&script);
    s.uid_gid = sandbox.run_as();
    let out = run_ok(sandbox, s).await;
    assert_eq!(out.stdout, "started\n", "{out:?}");
    assert!(
        none_left(&m).await,
        "a setsid daemon survived ({})",
        sandbox.summary()
    );
}

#[tokio::test]
async fn setsid_daemon_is_killed() {
    if !sandbox().is_active("kill_all") {
        eprintln!("skipped: no kill-all protection here");
        return;
    }
    setsid_daemon_is_killed_in(sandbox()).await;
}

#[tokio::test]
async fn shell_fork_bomb_is_contained() {
    if !sandbox().is_active("pids_limit") {
        eprintln!("skipped: no pids limit here");
        return;
    }
    let m = marker(50);
    let mut s = spec(&["bash", "-c", &format!(":(){{ :|:& }};: # {m}")]);
    s.pids_limit = Some(64);
    s.timeout = Duration::from_secs(2);
    let start = Instant::now();
    let out = run_ok(sandbox(), s).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(none_left(&m).await);
    let _ = out;
}

#[tokio::test]
async fn python_fork_bomb_is_contained() {
    if !sandbox().is_active("pids_limit") || !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: no pids limit or no /usr/bin/python3");
        return;
    }
    let m = marker(51);
    let code = format!("import os\n# {m}\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n");
    let mut s = spec(&["/usr/bin/python3", "-c", &code]);
    s.pids_limit = Some(64);
    s.timeout = Duration::from_secs(2);
    let start = Instant::now();
    let out = run_ok(sandbox(), s).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(out.timed_out);
    assert!(none_left(&m).await);
}

#[tokio::test]
async fn dropped_future_kills_everything() {
    let m = marker(60);
    let s = sh(&format!("sleep {m} & sleep 1{m}"));
    let task = tokio::spawn(async move { run(sandbox(), s, None).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while live_with(&m).len() < 2 {
        assert!(Instant::now() < deadline, "processes never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(none_left(&m).await);
}

#[tokio::test]
async fn file_size_limit_stops_dd() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(&["dd", "if=/dev/zero", "of=big", "bs=64k", "count=1000"]);
    s.cwd = dir.path().into();
    s.file_size_limit = Some(1 << 20);
    let out = run_ok(sandbox(), s).await;
    assert_eq!(out.signal, Some(libc::SIGXFSZ), "{out:?}");
    assert!(std::fs::metadata(dir.path().join("big")).unwrap().len() <= 1 << 20);
}

#[tokio::test]
async fn cpu_time_limit_stops_a_busy_loop() {
    let mut s = sh("while :; do :; done");
    s.cpu_time = Some(Duration::from_secs(1));
    s.timeout = Duration::from_secs(20);
    let out = run_ok(sandbox(), s).await;
    assert!(!out.timed_out);
    assert_eq!(out.signal, Some(libc::SIGXCPU), "{out:?}");
}

#[tokio::test]
async fn memory_limit_reports_oom_kill() {
    if !sandbox().is_active("memory_limit") || !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: no memory cgroup or no /usr/bin/python3");
        return;
    }
    let mut s = spec(&[
        "/usr/bin/python3",
        "-c",
        "b = b'x' * (400 << 20); print(len(b))",
    ]);
    s.memory_limit = Some(64 << 20);
    let out = run_ok(sandbox(), s).await;
    assert!(out.oom_killed, "{out:?}");
    assert_eq!(out.signal, Some(libc::SIGKILL));
    assert_eq!(out.stdout, "");
    // The same program fits without the limit.
    let mut s = spec(&[
        "/usr/bin/python3",
        "-c",
        "b = b'x' * (100 << 20); print(len(b))",
    ]);
    s.memory_limit = Some(512 << 20);
    let out = run_ok(sandbox(), s).await;
    assert!(!out.oom_killed);
    assert_eq!(out.exit_code, Some(0));
}

/// Pooled groups come with the last execution's limits written: a different limit,
/// higher (swap limit raised first on v1) or lower, must still be the one that holds.
#[tokio::test]
async fn pooled_groups_take_each_executions_limits() {
    if !sandbox().is_active("memory_limit") || !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: no memory cgroup or no /usr/bin/python3");
        return;
    }
    let alloc = |mb: u64, limit_mb: u64| {
        let mut s = spec(&[
            "/usr/bin/python3",
            "-c",
            &format!("b = b'x' * ({mb} << 20); print(len(b))"),
        ]);
        s.memory_limit = Some(limit_mb << 20);
        s
    };
    for (mb, limit_mb, fits) in [
        (200, 64, false),
        (200, 64, false),
        (100, 512, true),
        (100, 512, true),
        (200, 64, false),
    ] {
        let out = run_ok(sandbox(), alloc(mb, limit_mb)).await;
        assert_eq!(!out.oom_killed, fits, "{mb} MB in {limit_mb} MB: {out:?}");
        if fits {
            assert_eq!(out.exit_code, Some(0), "{out:?}");
        }
        // The pool is refilled (with these limits) before the next execution.
        background::flush(Duration::from_secs(10));
    }
}

/// A sandbox whose cgroup pool holds one group, so that recycling is seen at once;
/// `None` (the test is skipped) when the cgroup protection `needs` is not active.
fn one_group_pool(needs: &str) -> Option<Sandbox> {
    let sandbox = Sandbox::detect(SandboxSettings {
        cgroup_pool: 1,
        ..SandboxSettings::default()
    });
    let active = sandbox.is_active("cgroups") && sandbox.is_active(needs);
    if !active {
        eprintln!("skipped: no cgroup with {needs}");
    }
    active.then_some(sandbox)
}

/// A recycled group keeps the memory limit of the last execution that set one: a later
/// higher limit must still be accepted after an execution without any (v1 refuses a
/// limit above `memory.memsw.limit_in_bytes`, so the order of the writes matters).
#[tokio::test]
async fn a_recycled_group_takes_a_higher_limit_after_one_without() {
    let Some(own) = one_group_pool("memory_limit") else {
        return;
    };
    for limit in [Some(512 << 20), None, Some(1 << 30), None, Some(256 << 20)] {
        let mut s = spec(&["true"]);
        s.memory_limit = limit;
        let out = run_ok(&own, s).await;
        assert_eq!(out.exit_code, Some(0), "{limit:?}: {out:?}");
        background::flush(Duration::from_secs(10));
    }
}

/// The first line of `/proc/self/cgroup` (printed by the program) that `wanted`.
fn cgroup_line(out: &ProcessOutcome, wanted: impl Fn(&str) -> bool) -> String {
    out.stdout
        .lines()
        .find(|l| wanted(l))
        .unwrap_or_else(|| panic!("no such cgroup in {out:?}"))
        .to_string()
}

/// The program's memory group: the v1 memory hierarchy's, or the v2 one.
fn memory_group(out: &ProcessOutcome) -> String {
    cgroup_line(out, |l| l.contains(":memory:") || l.starts_with("0::"))
}

/// A recycled group does not keep the process limit of its last execution when the
/// next one asks for none.
#[tokio::test]
async fn a_recycled_group_drops_a_limit_the_next_execution_does_not_ask_for() {
    let Some(own) = one_group_pool("pids_limit") else {
        return;
    };
    let script = "cat /sys/fs/cgroup/pids$(grep :pids: /proc/self/cgroup | cut -d: -f3)/pids.max \
                  2>/dev/null || cat /sys/fs/cgroup$(grep ^0:: /proc/self/cgroup | cut -d: -f3)/pids.max";
    let mut limits = Vec::new();
    for pids in [Some(64), None] {
        let mut s = spec(&["sh", "-c", script]);
        s.pids_limit = pids;
        let out = run_ok(&own, s).await;
        limits.push(out.stdout.trim().to_string());
        background::flush(Duration::from_secs(10));
    }
    assert_eq!(limits, ["64", "max"]);
}

/// Groups that were out at the same time all come back, even though the pool was
/// refilled while they were out: back to back, the next execution takes a group
/// before the previous one's comes back, and a pool that was full by then removed it.
#[tokio::test]
async fn groups_out_at_once_all_come_back() {
    let Some(own) = one_group_pool("memory_limit") else {
        return;
    };
    // Both hold a group at once (one pooled, one made on the spot): each waits until
    // the other has started (a file each in a shared dir, however slow the machine).
    let pair = || async {
        let meet = tempfile::tempdir().unwrap();
        let dir = meet.path().display().to_string();
        let limited = |me: &str, other: &str| {
            let script = format!(
                "cat /proc/self/cgroup; touch {dir}/{me}; \
                 while [ ! -e {dir}/{other} ]; do sleep 0.01; done"
            );
            let mut s = spec(&["sh", "-c", &script]);
            s.memory_limit = Some(64 << 20);
            s
        };
        let (a, b) = tokio::join!(
            run_ok(&own, limited("a", "b")),
            run_ok(&own, limited("b", "a"))
        );
        background::flush(Duration::from_secs(10));
        [memory_group(&a), memory_group(&b)]
    };
    let first = pair().await;
    assert_ne!(first[0], first[1]);
    let second = pair().await;
    for group in &second {
        assert!(
            first.contains(group),
            "{group} is new: {first:?} were not kept"
        );
    }
}

/// A group whose execution ended on its own is recycled: the next execution gets it
/// with its own OOM verdict; one that needed killing (a daemon left running) is not.
#[tokio::test]
async fn recycled_groups_report_only_their_own_oom_kills() {
    let Some(own) = one_group_pool("memory_limit") else {
        return;
    };
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: no /usr/bin/python3");
        return;
    }
    let limited = |argv: &[&str]| {
        let mut s = spec(argv);
        s.memory_limit = Some(64 << 20);
        s
    };
    let program = "import sys; print(open('/proc/self/cgroup').read()); \
                   b = b'x' * (int(sys.argv[1]) << 20)";
    let first = run_ok(
        &own,
        limited(&["/usr/bin/python3", "-u", "-c", program, "200"]),
    )
    .await;
    assert!(first.oom_killed, "{first:?}");
    background::flush(Duration::from_secs(10));
    let second = run_ok(
        &own,
        limited(&["/usr/bin/python3", "-u", "-c", program, "1"]),
    )
    .await;
    assert_eq!(memory_group(&second), memory_group(&first), "not recycled");
    assert!(!second.oom_killed, "{second:?}");
    assert_eq!(second.exit_code, Some(0), "{second:?}");
    background::flush(Duration::from_secs(10));

    // A daemon outlives the main process: the kill round makes the group unfit.
    let m = marker(53);
    let third = run_ok(
        &own,
        limited(&[
            "sh",
            "-c",
            &format!("cat /proc/self/cgroup; setsid sleep {m} &"),
        ]),
    )
    .await;
    assert_eq!(memory_group(&third), memory_group(&first), "not recycled");
    assert!(none_left(&m).await);
    background::flush(Duration::from_secs(10));
    let fourth = run_ok(&own, limited(&["cat", "/proc/self/cgroup"])).await;
    assert_ne!(
        memory_group(&fourth),
        memory_group(&third),
        "recycled after a kill"
    );
}

/// The program starts as after a plain exec from a shell: no signal blocked, none
/// ignored (Rust ignores SIGPIPE in the sidecar), and none of the sidecar's handlers.
#[tokio::test]
async fn child_starts_with_default_signal_state() {
    let out = run_ok(sandbox(), spec(&["cat", "/proc/self/status"])).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    for field in ["SigBlk", "SigIgn", "SigCgt"] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in {}", out.stdout));
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        // Signals 32 and 33 belong to glibc (no program can set them); the rest must
        // be clear.
        assert_eq!(mask & !(0b11 << 31), 0, "{line}");
    }
}

/// The child shares the sidecar's memory until `execve`, with the uid of user code
/// after its uid drop: the sidecar stays non-dumpable from the first such spawn on, so
/// no process of that uid can ptrace the child (and through it the sidecar).
#[tokio::test]
async fn uid_drop_keeps_the_sidecar_undumpable() {
    if !sandbox().is_active("uid_drop") {
        eprintln!("skipped: no uid drop here");
        return;
    }
    for _ in 0..3 {
        let mut s = spec(&["id", "-u"]);
        s.uid_gid = Some((65532, 65532));
        let out = run_ok(sandbox(), s).await;
        assert_eq!(out.stdout.trim(), "65532", "{out:?}");
        // SAFETY: plain getter.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, 0);
    }
}

#[tokio::test]
async fn rlimit_as_when_asked() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: no /usr/bin/python3");
        return;
    }
    let mut s = spec(&["/usr/bin/python3", "-c", "b = bytearray(400 << 20)"]);
    s.memory_limit = Some(128 << 20);
    s.use_rlimit_as = true;
    let out = run_ok(sandbox(), s).await;
    assert_eq!(out.exit_code, Some(1));
    assert!(out.stderr.contains("MemoryError"), "{}", out.stderr);
}

#[tokio::test]
async fn network_off_blocks_loopback() {
    if !sandbox().is_active("network_isolation") {
        eprintln!("skipped: no network namespace here");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("echo hi > /dev/tcp/127.0.0.1/{port} && echo connected");
    let out = run_ok(sandbox(), spec(&["bash", "-c", &script])).await;
    assert_ne!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "");
    let mut s = spec(&["bash", "-c", &script]);
    s.network = true;
    let out = run_ok(sandbox(), s).await;
    assert_eq!(out.stdout, "connected\n", "{out:?}");
}

#[tokio::test]
async fn drops_to_unprivileged_uid() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    let mut s = sh("id -u; id -g; id -G");
    s.uid_gid = Some((65532, 65532));
    let out = run_ok(sandbox(), s).await;
    assert_eq!(out.stdout, "65532\n65532\n65532\n");
    // The sandbox's default spec does the same.
    let mut s = sandbox().spec(vec!["id".into(), "-u".into()], "/tmp");
    s.env = vec![("PATH".into(), PATH.into())];
    let out = run_ok(sandbox(), s).await;
    assert_eq!(out.stdout, "65532\n");
}

#[tokio::test]
async fn no_fd_leaks_into_the_child() {
    // Only 0, 1, 2 (and the directory ls opens) are open in the child.
    let out = run_ok(sandbox(), sh("ls /proc/self/fd | wc -l")).await;
    assert_eq!(out.stdout.trim(), "4", "{out:?}");
}

#[tokio::test]
async fn own_session_and_process_group() {
    let out = run_ok(
        sandbox(),
        spec(&[
            "/usr/bin/python3",
            "-c",
            "import os; print(os.getsid(0) == os.getpid() == os.getpgid(0))",
        ]),
    )
    .await;
    assert_eq!(out.stdout, "True\n");
}

#[tokio::test]
async fn many_at_once() {
    let runs = (0..24).map(|i| async move {
        let out = run_ok(sandbox(), sh(&format!("echo {i}"))).await;
        assert_eq!(out.stdout, format!("{i}\n"));
    });
    futures_util::future::join_all(runs).await;
}

#[tokio::test]
async fn report_lists_every_protection() {
    let report = sandbox().report();
    for name in [
        "cgroups",
        "memory_limit",
        "pids_limit",
        "kill_all",
        "network_isolation",
        "uid_drop",
        "private_processes",
        "scoped_signals",
        "rlimits",
        "no_new_privs",
    ] {
        assert!(report.iter().any(|p| p.name == name), "{name} missing");
    }
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"active\""));
    for p in &report {
        eprintln!("{:>18} {:>5}  {}", p.name, p.active, p.detail);
    }
}

/// Without cgroups, as root: a dedicated uid per execution and the uid sweep.
#[tokio::test]
async fn uid_sweep_without_cgroups() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    // A uid range of this test process's own: two processes sweeping the same uid
    // would kill each other's executions (see SandboxSettings::uid_pool).
    let first = 300_000 + (std::process::id() % 1000) * 600;
    let sandbox = Sandbox::detect(SandboxSettings {
        cgroups: false,
        uid_pool: Some((first, 512)),
        ..SandboxSettings::default()
    });
    assert!(sandbox.is_active("kill_all"), "{:?}", sandbox.report());
    setsid_daemon_is_killed_in(&sandbox).await;

    let mut s = sh("id -u; id -g");
    s.uid_gid = Some((65532, 65532));
    let out = run_ok(&sandbox, s).await;
    let uid: u32 = out.stdout.lines().next().unwrap().parse().unwrap();
    assert!((first..first + 512).contains(&uid), "{out:?}");
    assert!(out.stdout.ends_with("65532\n"));

    // A fork bomb under RLIMIT_NPROC on the dedicated uid.
    let m = marker(52);
    let mut s = spec(&["bash", "-c", &format!(":(){{ :|:& }};: # {m}")]);
    s.uid_gid = Some((65532, 65532));
    s.pids_limit = Some(64);
    s.timeout = Duration::from_secs(2);
    let start = Instant::now();
    run_ok(&sandbox, s).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(none_left(&m).await);
}

/// cgroup v2 code paths on the hybrid hierarchy (which has no controllers here, but
/// `cgroup.kill`).
#[tokio::test]
async fn cgroup_v2_kill_on_unified_hierarchy() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.procs").exists() || !is_root() {
        eprintln!("skipped: no writable hybrid cgroup2 hierarchy");
        return;
    }
    let sandbox = Sandbox::detect(SandboxSettings {
        cgroup_v2_root: Some(unified.into()),
        ..SandboxSettings::default()
    });
    if !sandbox.is_active("cgroups") {
        eprintln!("skipped: {:?}", sandbox.report());
        return;
    }
    setsid_daemon_is_killed_in(&sandbox).await;
    let m = marker(32);
    let mut s = sh(&format!("(sleep {m}; echo x) & sleep 2{m}"));
    s.timeout = Duration::from_millis(500);
    let out = run_ok(&sandbox, s).await;
    assert!(out.timed_out);
    assert!(none_left(&m).await);

    // A group whose execution ended on its own serves the next one (v2 has no pids
    // controller here: emptiness is read from `cgroup.procs`).
    let cat = || spec(&["cat", "/proc/self/cgroup"]);
    let v2_group = |out: &ProcessOutcome| cgroup_line(out, |l| l.starts_with("0::"));
    let first = v2_group(&run_ok(&sandbox, cat()).await);
    background::flush(Duration::from_secs(10));
    let second = v2_group(&run_ok(&sandbox, cat()).await);
    assert_eq!(first, second, "not recycled");
    assert!(first.contains("/sidecar."), "{first}");
}

/// Overhead of `run` against a plain spawn, interleaved so that load from elsewhere
/// hits both alike: `cargo test --release -p sidecar --lib exec::tests::overhead --
/// --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn overhead() {
    fn p(v: &mut [Duration], q: f64) -> Duration {
        v.sort();
        v[((v.len() as f64 - 1.0) * q) as usize]
    }
    const N: usize = 300;
    let configs = [
        ("run(), everything on", SandboxSettings::default()),
        (
            "run(), no cgroups",
            SandboxSettings {
                cgroups: false,
                uid_pool: None,
                ..Default::default()
            },
        ),
        (
            "run(), nothing (no cgroups, netns, uid)",
            SandboxSettings {
                cgroups: false,
                uid_pool: None,
                network_isolation: false,
                run_as: None,
                ..Default::default()
            },
        ),
    ];
    let sandboxes: Vec<std::sync::Arc<Sandbox>> = configs
        .iter()
        .map(|(_, s)| std::sync::Arc::new(Sandbox::detect(s.clone())))
        .collect();
    let mut plain = Vec::with_capacity(N);
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(N); configs.len()];
    for i in 0..N + 20 {
        let t = Instant::now();
        let status = std::process::Command::new("/bin/true").status().unwrap();
        if i >= 20 {
            plain.push(t.elapsed());
        }
        assert!(status.success());
        for (k, sandbox) in sandboxes.iter().enumerate() {
            let sandbox = std::sync::Arc::clone(sandbox);
            let mut s = sandbox.spec(vec!["/bin/true".into()], "/tmp");
            s.env = vec![("PATH".into(), PATH.into())];
            // As a request handler would: in a task of its own.
            let elapsed = tokio::spawn(async move {
                let t = Instant::now();
                let out = run(&sandbox, s, None).await.unwrap();
                assert_eq!(out.exit_code, Some(0));
                t.elapsed()
            })
            .await
            .unwrap();
            if i >= 20 {
                times[k].push(elapsed);
            }
        }
    }
    let base = p(&mut plain, 0.5);
    eprintln!(
        "std::process::Command /bin/true: p50 {base:?} p90 {:?}",
        p(&mut plain, 0.9)
    );
    for ((name, _), t) in configs.iter().zip(times.iter_mut()) {
        let p50 = p(t, 0.5);
        eprintln!(
            "{name}: p50 {p50:?} (+{:?}) p90 {:?}",
            p50.saturating_sub(base),
            p(t, 0.9)
        );
    }
}

/// The identity of a namespace descriptor (its inode).
fn ns_inode(fd: std::os::fd::RawFd) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino()
}

/// A private /tmp: what an execution leaves in /tmp, /var/tmp and /dev/shm is gone when
/// its namespace is reused, a path bound back is the host's own, and the host's
/// temporary dirs neither show through nor receive anything.
#[tokio::test]
async fn private_tmp_is_emptied_before_it_is_reused() {
    if !is_root() {
        eprintln!("skipped: not root");
        return;
    }
    // Under /tmp, so it must be bound back to be reachable.
    let work = tempfile::tempdir_in("/tmp").unwrap();
    let sandbox = Sandbox::detect(SandboxSettings {
        visible: vec![work.path().to_path_buf()],
        ..SandboxSettings::default()
    });
    assert!(sandbox.is_active("private_tmp"), "{:?}", sandbox.report());
    let m = marker(61);
    let host_file = Path::new("/tmp").join(format!("host-{m}"));
    std::fs::write(&host_file, "host").unwrap();
    let in_tmp = |tmp: &TmpNs, script: String| {
        let mut s = sh(&script);
        s.cwd = work.path().to_path_buf();
        s.private_tmp = Some(tmp.clone());
        s
    };

    let tmp = sandbox.private_tmp().unwrap().expect("a private /tmp");
    let first = ns_inode(tmp.fd());
    let plant = format!(
        "test -e {host} && echo host visible; \
         for d in /tmp /var/tmp /dev/shm; do test -d $d || continue; \
         echo x > $d/p-{m}; mkdir -p $d/d-{m}/e; echo y > $d/d-{m}/e/f; ln -s /etc $d/l-{m}; done; \
         echo kept > k-{m}; ls -A /tmp | grep -c {m}",
        host = host_file.display()
    );
    let out = run_ok(&sandbox, in_tmp(&tmp, plant)).await;
    assert_eq!(out.stdout, "3\n", "{out:?}");
    assert!(work.path().join(format!("k-{m}")).exists());
    for d in ["/tmp", "/var/tmp", "/dev/shm"] {
        assert!(!Path::new(d).join(format!("p-{m}")).exists(), "{d}");
    }
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host");

    // Given back, emptied on the clean-up thread, then handed out again.
    drop(tmp);
    background::flush(Duration::from_secs(5));
    let leases: Vec<TmpNs> = (0..3)
        .map(|_| sandbox.private_tmp().unwrap().unwrap())
        .collect();
    let again = leases
        .iter()
        .find(|t| ns_inode(t.fd()) == first)
        .expect("the namespace was reused");
    let check = format!("ls -A /tmp /var/tmp /dev/shm 2>/dev/null | grep -c {m}; cat k-{m}");
    let out = run_ok(&sandbox, in_tmp(again, check)).await;
    assert_eq!(out.stdout, "0\nkept\n", "{out:?}");
    std::fs::remove_file(&host_file).unwrap();
}

/// A process the sandbox starts cannot signal one outside its execution even as the
/// same user (here without the uid drop: only the Landlock scope stands in the way),
/// and still signals its own.
#[tokio::test]
async fn signals_stay_within_the_execution() {
    if !sandbox().is_active("scoped_signals") {
        eprintln!("skipped: scoped_signals is not active here");
        return;
    }
    let mut outside = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let mut spec = sh(&format!(
        "kill -0 {} 2>&1; echo \"outside $?\"; sleep 30 & kill $!; wait $!; echo \"own $?\"",
        outside.id()
    ));
    spec.uid_gid = None;
    let out = run_ok(sandbox(), spec).await;
    outside.kill().unwrap();
    outside.wait().unwrap();
    assert!(out.stdout.contains("Operation not permitted"), "{out:?}");
    assert!(out.stdout.contains("outside 1\n"), "{out:?}");
    assert!(out.stdout.ends_with("own 143\n"), "{out:?}");
}
