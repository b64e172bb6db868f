//! The server itself: the envelope on every error, body limit, session ids, shared
//! workspace, bearer auth on TCP, socket handling and graceful shutdown.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sidecar_tests::{
    assert_error_envelope, free_port, ndjson, processes_with, read_response, run_until_exit,
    serve_command, test_dir, unique_marker, wait_no_processes, write_request, Options, Response,
    Sidecar,
};

fn json_post(sc: &Sidecar, path: &str, body: &[u8]) -> Response {
    one(
        sc,
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    )
}

/// A request in one write (the server may answer from the head alone and close).
fn one(sc: &Sidecar, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    sidecar_tests::request_in_one_write(&sc.socket, method, path, headers, body)
}

// ---------------------------------------------------------------- envelope

#[test]
fn health_is_unwrapped() {
    let sc = Sidecar::start();
    let (status, v) = sc.get("/health");
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true);
    assert!(v["version"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(v.get("result").is_none(), "{v}");
}

#[test]
fn the_log_of_a_sidecar_not_on_a_terminal_has_no_colour_codes() {
    // stderr goes to a file here, as it goes to a pipe in a container.
    let sc = Sidecar::start();
    let (status, _) = sc.get("/health");
    assert_eq!(status, 200);
    let (status, _) = sc.post("/read", &serde_json::json!({"path": "missing.txt"}));
    assert_eq!(status, 400);
    let log = sc.log();
    assert!(log.contains("protection active"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log:?}");
}

#[test]
fn errors_use_the_envelope_with_the_right_status() {
    let sc = Sidecar::start();
    // Unknown path: 404, whatever the method.
    for (method, path) in [("POST", "/nope"), ("GET", "/nope"), ("POST", "/read/extra")] {
        let r = one(
            &sc,
            method,
            path,
            &[("content-type", "application/json")],
            b"{}",
        );
        assert_eq!(r.status, 404, "{method} {path}");
        assert_error_envelope(&r.json());
    }
    // Wrong method: 405.
    for (method, path) in [
        ("GET", "/read"),
        ("GET", "/bash"),
        ("PUT", "/write"),
        ("DELETE", "/grep"),
        ("POST", "/health"),
    ] {
        let r = one(
            &sc,
            method,
            path,
            &[("content-type", "application/json")],
            b"{}",
        );
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        assert_error_envelope(&r.json());
    }
    // Invalid JSON, a body that is not an object, wrong field types: 400.
    for body in [
        &b"{not json"[..],
        b"",
        b"[1,2]",
        b"\"str\"",
        b"{\"path\": 5}",
        b"{\"path\": \"a\", \"sessionId\": 7}",
    ] {
        for path in ["/read", "/write", "/edit", "/ls", "/find", "/grep", "/bash"] {
            let r = json_post(&sc, path, body);
            assert_eq!(
                r.status,
                400,
                "{path} {}: {}",
                String::from_utf8_lossy(body),
                r.text()
            );
            assert_error_envelope(&r.json());
        }
    }
    // Not JSON by content type: 400 with a message saying what to send. (No type at
    // all is read as JSON, except from a browser: see execute_api.rs.)
    for headers in [
        vec![("content-type", "text/plain")],
        vec![("content-type", "application/x-www-form-urlencoded")],
        vec![("origin", "http://example.com")],
    ] {
        let r = one(&sc, "POST", "/read", &headers, br#"{"path":"a"}"#);
        assert_eq!(r.status, 400, "{headers:?}");
        let v = r.json();
        assert_error_envelope(&v);
        assert!(
            v["error"].as_str().unwrap().contains("application/json"),
            "{v}"
        );
    }
    // `application/json; charset=utf-8` is JSON.
    std::fs::write(sc.workspace.join("a.txt"), "x\n").unwrap();
    let r = one(
        &sc,
        "POST",
        "/read",
        &[("content-type", "application/json; charset=utf-8")],
        br#"{"path":"a.txt"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The original accepted a 50 MB body; here anything above SIDECAR_BODY_LIMIT gets a
/// 413 with the envelope, and nothing is written.
#[test]
fn oversized_body_gets_413() {
    let sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_BODY_LIMIT", "4096")]));
    let big = json!({"path": "big.txt", "content": "x".repeat(20_000)}).to_string();
    for path in ["/write", "/bash", "/read"] {
        let r = json_post(&sc, path, big.as_bytes());
        assert_eq!(r.status, 413, "{path}: {}", r.text());
        let v = r.json();
        assert_error_envelope(&v);
        assert!(v["error"].as_str().unwrap().contains("too large"), "{v}");
    }
    assert!(!sc.workspace.join("big.txt").exists());
    // Under the limit: fine.
    let small = json!({"path": "small.txt", "content": "x".repeat(3000)});
    assert_eq!(sc.ok("/write", &small)["bytes"], 3000);
}

/// A client that sends half a request head, or nothing, or leaves a connection idle
/// is let go after SIDECAR_HEADER_TIMEOUT (such connections used to stay open for
/// good); a request that itself runs longer than that is not cut short.
#[test]
fn stalled_connections_are_closed_but_long_requests_are_not() {
    use std::io::Write;
    let sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_HEADER_TIMEOUT", "1")]));
    let connect = || connect_waiting(&sc, Duration::from_secs(30));
    let mut half = connect();
    half.write_all(b"POST /read HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let silent = connect();
    let mut idle = connect();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    // A read that times out fails the test: each must end with the server's close.
    for (name, mut stream) in [("half a head", half), ("nothing", silent), ("idle", idle)] {
        let mut got = Vec::new();
        stream
            .read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("{name}: still open: {e}"));
        if name == "idle" {
            assert!(String::from_utf8_lossy(&got).contains("healthy"), "{name}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(25));
    let v = sc.execute(&json!({"language": "bash", "code": "sleep 3; echo done"}));
    assert_eq!(v["stdout"], "done\n", "{v:#}");
    // Nor a response that streams for longer.
    let lines = sc.bash(&json!({"command": "echo a; sleep 3; echo b"}));
    assert_eq!(lines.last().unwrap()["exitCode"], 0, "{lines:?}");
    let out = sidecar_tests::streamed_output(&lines);
    assert_eq!(out, "a\nb\n");
}

/// A connection to the sidecar whose reads give up after `wait` (a test that waits
/// for the server's answer or close fails instead of hanging).
fn connect_waiting(sc: &Sidecar, wait: Duration) -> std::os::unix::net::UnixStream {
    let s = std::os::unix::net::UnixStream::connect(&sc.socket).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s
}

/// Started with the soft limit on open files container runtimes give (1024; 256
/// here), the sidecar raises it: hundreds of open connections do not stop it from
/// accepting more, running code, or reading its plugins (at the limit, a reload once
/// found the plugins directory unreadable and served no language).
#[test]
fn many_open_connections_do_not_exhaust_the_descriptors() {
    let sc = Sidecar::start_with(Options {
        open_files_soft_limit: Some(256),
        ..Options::default()
    });
    let held: Vec<_> = (0..400)
        .map(|_| connect_waiting(&sc, Duration::from_secs(30)))
        .collect();
    let v = sc.execute(&json!({"language": "bash", "code": "echo through"}));
    assert_eq!(v["stdout"], "through\n", "{v}");
    let (status, langs) = sc.get("/languages");
    assert_eq!(status, 200);
    assert!(
        langs["languages"].as_array().is_some_and(|l| l.len() > 1),
        "{langs}"
    );
    drop(held);
    assert!(!sc.log().contains("Too many open files"), "{}", sc.log());
}

/// A request whose body stops coming is answered 408 once nothing of it arrived for the
/// idle limit, and its connection closed; a body that keeps coming, however slowly, is
/// read whole. Nothing of the stalled requests was written.
#[test]
fn a_stalled_body_is_408_and_a_slow_one_is_read() {
    use std::io::Write;
    let sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_HEADER_TIMEOUT", "1")]));
    let connect = || connect_waiting(&sc, Duration::from_secs(30));
    let json_head = |len: usize| {
        format!(
            "POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n\r\n"
        )
    };
    let body = json!({"path": "slow.txt", "content": "x".repeat(40)}).to_string();

    let mut json_stall = connect();
    json_stall
        .write_all((json_head(body.len()) + &body[..10]).as_bytes())
        .unwrap();
    let boundary = "b0undary";
    let part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"up.txt\"\r\n\r\nsome"
    );
    let mut upload_stall = connect();
    upload_stall
        .write_all(
            format!(
                "POST /files HTTP/1.1\r\nHost: x\r\n\
                 Content-Type: multipart/form-data; boundary={boundary}\r\n\
                 Content-Length: 1000\r\n\r\n{part}"
            )
            .as_bytes(),
        )
        .unwrap();
    for (name, mut stream) in [("/write", json_stall), ("/files", upload_stall)] {
        // A read that times out fails the test: the answer must come, then the close.
        let mut got = Vec::new();
        stream
            .read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("{name}: no answer: {e}"));
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{name}: {text}");
        assert!(
            text.contains("\"ok\":false") && text.contains("stalled"),
            "{name}: {text}"
        );
    }
    assert!(!sc.workspace.join("slow.txt").exists());
    assert!(!sc.workspace.join("up.txt").exists());

    // A tenth of the body every 0.4 s: 4 s in all, never 1 s without a byte.
    let mut slow = connect();
    slow.write_all(json_head(body.len()).as_bytes()).unwrap();
    for chunk in body.as_bytes().chunks(body.len().div_ceil(10)) {
        std::thread::sleep(Duration::from_millis(400));
        slow.write_all(chunk).unwrap();
    }
    let response = sidecar_tests::read_response(slow);
    assert_eq!(response.status, 200, "{}", response.text());
    let written = std::fs::read_to_string(sc.workspace.join("slow.txt")).unwrap();
    assert_eq!(written, "x".repeat(40));
}

// ---------------------------------------------------------------- sessions

/// The original rewrote odd characters to `_`, so `a.b` and `a_b` shared a
/// directory. Here a bad id is refused, nothing is created, and `a_b` is its own.
#[test]
fn session_ids_are_validated_not_rewritten() {
    let sc = Sidecar::start();
    let long = "x".repeat(129);
    for bad in [
        "a.b", "a/b", "..", "../x", "", " ", "a b", "é", "a\\b", &long,
    ] {
        for (endpoint, body) in [
            (
                "/write",
                json!({"sessionId": bad, "path": "f.txt", "content": "x"}),
            ),
            ("/read", json!({"sessionId": bad, "path": "f.txt"})),
            ("/ls", json!({"sessionId": bad})),
            ("/bash", json!({"sessionId": bad, "command": "touch made"})),
        ] {
            let (status, m) = sc.fails(endpoint, &body);
            assert_eq!(status, 400, "{endpoint} {bad:?}: {m}");
            assert!(m.contains("sessionId"), "{m}");
        }
    }
    // Nothing was created for any of them.
    let entries: Vec<String> = std::fs::read_dir(&sc.workspace)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
    // `a_b` is fine and its own directory; `a-B9` too.
    sc.ok(
        "/write",
        &json!({"sessionId": "a_b", "path": "f.txt", "content": "from a_b"}),
    );
    sc.ok(
        "/write",
        &json!({"sessionId": "a-B9", "path": "f.txt", "content": "from a-B9"}),
    );
    assert_eq!(
        std::fs::read_to_string(sc.workspace.join("a_b/f.txt")).unwrap(),
        "from a_b"
    );
    assert_eq!(
        std::fs::read_to_string(sc.workspace.join("a-B9/f.txt")).unwrap(),
        "from a-B9"
    );
    let max = "y".repeat(128);
    sc.ok("/ls", &json!({"sessionId": max}));
}

#[test]
fn sessions_are_isolated_and_no_session_means_the_root() {
    let sc = Sidecar::start();
    sc.ok(
        "/write",
        &json!({"sessionId": "one", "path": "f.txt", "content": "one"}),
    );
    sc.ok(
        "/write",
        &json!({"sessionId": "two", "path": "f.txt", "content": "two"}),
    );
    assert_eq!(
        sc.ok("/read", &json!({"sessionId": "one", "path": "f.txt"}))["content"],
        "one"
    );
    assert_eq!(
        sc.ok("/read", &json!({"sessionId": "two", "path": "f.txt"}))["content"],
        "two"
    );
    assert_eq!(
        sc.ok("/grep", &json!({"sessionId": "two", "pattern": "one"}))["content"],
        "No matches found"
    );
    // No sessionId (the newest original): the workspace root itself.
    sc.ok("/write", &json!({"path": "root.txt", "content": "r"}));
    assert_eq!(
        std::fs::read_to_string(sc.workspace.join("root.txt")).unwrap(),
        "r"
    );
    assert_eq!(sc.ok("/ls", &json!({}))["output"], "one/\nroot.txt\ntwo/");
    assert_eq!(
        sc.ok("/read", &json!({"path": "one/f.txt"}))["content"],
        "one"
    );
    // A null sessionId is the same as none.
    assert_eq!(
        sc.ok("/read", &json!({"sessionId": null, "path": "root.txt"}))["content"],
        "r"
    );
    // An absolute path inside the root works without a session.
    let abs = sc.workspace.join("two/f.txt");
    assert_eq!(
        sc.ok("/read", &json!({"path": abs.to_str().unwrap()}))["content"],
        "two"
    );
}

#[test]
fn shared_workspace_puts_every_session_on_the_root() {
    let sc = Sidecar::start_with(Options::with_env(&[("SHARED_WORKSPACE", "1")]));
    sc.ok(
        "/write",
        &json!({"sessionId": "s1", "path": "f.txt", "content": "shared"}),
    );
    assert_eq!(
        std::fs::read_to_string(sc.workspace.join("f.txt")).unwrap(),
        "shared"
    );
    assert!(!sc.workspace.join("s1").exists());
    assert_eq!(
        sc.ok("/read", &json!({"sessionId": "s2", "path": "f.txt"}))["content"],
        "shared"
    );
    let lines = sc.bash(&json!({"sessionId": "s3", "command": "pwd; cat f.txt"}));
    let out = sidecar_tests::streamed_output(&lines);
    assert_eq!(out, format!("{}\nshared", sc.workspace.display()));
    // A bad id is still refused.
    assert_eq!(sc.fails("/ls", &json!({"sessionId": "a.b"})).0, 400);
}

// ---------------------------------------------------------------- TCP and auth

fn tcp(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write_request(&mut s, method, path, headers, body);
    read_response(s)
}

#[test]
fn bearer_auth_on_tcp() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let sc = Sidecar::start_with(Options::with_env(&[
        ("TCP_ADDR", &addr),
        ("SIDECAR_AUTH_TOKEN", "s3cret-token"),
    ]));
    let body = br#"{"path":"f.txt","content":"via tcp"}"#;
    let ct = ("content-type", "application/json");
    // No header, a wrong token, a wrong scheme: 401 with the envelope.
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-tokenX"),
        Some("Bearer "),
        Some("Basic s3cret-token"),
        Some("s3cret-token"),
    ] {
        let mut headers = vec![ct];
        headers.extend(auth.map(|a| ("authorization", a)));
        for (method, path) in [("POST", "/write"), ("POST", "/bash"), ("GET", "/languages")] {
            // No body: the answer comes from the head, and unread body bytes would
            // make the server's close a TCP reset that can eat the response.
            let r = tcp(port, method, path, &headers, b"");
            assert_eq!(r.status, 401, "{auth:?} {method} {path}: {}", r.text());
            assert_error_envelope(&r.json());
        }
    }
    assert!(!sc.workspace.join("f.txt").exists());
    // The right token: 200.
    let r = tcp(
        port,
        "POST",
        "/write",
        &[ct, ("authorization", "Bearer s3cret-token")],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["bytes"], 7);
    let r = tcp(
        port,
        "POST",
        "/bash",
        &[ct, ("authorization", "Bearer s3cret-token")],
        br#"{"command":"cat f.txt"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(ndjson(&r.text())[0]["data"], "via tcp");
    // GET /health needs no token.
    let r = tcp(port, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ok"], true);
}

#[test]
fn tcp_host_and_port_as_the_coding_sidecar_took_them() {
    let port = free_port();
    let _sc = Sidecar::start_with(Options::with_env(&[
        ("TCP_HOST", "127.0.0.1"),
        ("TCP_PORT", &port.to_string()),
        ("SIDECAR_AUTH_TOKEN", "tok"),
    ]));
    // A body sent with a wrong token still gets its 401 (the server reads it first).
    let r = tcp(
        port,
        "POST",
        "/write",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer no"),
        ],
        br#"{"path":"x.txt","content":"nope"}"#,
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_error_envelope(&r.json());
    let r = tcp(
        port,
        "POST",
        "/ls",
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer tok"),
        ],
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["output"], "(empty directory)");
}

#[test]
fn non_loopback_tcp_without_a_token_refuses_to_start() {
    let dir = test_dir();
    let port = free_port();
    let opts = Options::with_env(&[("TCP_ADDR", &format!("0.0.0.0:{port}"))]);
    let status = run_until_exit(serve_command(dir.path(), &opts), Duration::from_secs(30))
        .expect("the sidecar must refuse to start, not run");
    assert!(!status.success(), "{status}");
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(
        log.contains("SIDECAR_AUTH_TOKEN") && log.contains("0.0.0.0"),
        "unclear message:\n{log}"
    );
    assert!(!dir.path().join("run/sidecar.sock").exists());
    // An empty token is no token.
    let opts = Options::with_env(&[
        ("TCP_ADDR", &format!("0.0.0.0:{port}")),
        ("SIDECAR_AUTH_TOKEN", ""),
    ]);
    let status = run_until_exit(serve_command(dir.path(), &opts), Duration::from_secs(30))
        .expect("the sidecar must refuse to start");
    assert!(!status.success());
}

// ---------------------------------------------------------------- socket handling

/// The original's crash left a stale socket behind; a new server replaces it.
#[test]
fn stale_socket_is_replaced() {
    let dir = test_dir();
    let sock = dir.path().join("run/sidecar.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(std::fs::symlink_metadata(&sock)
        .unwrap()
        .file_type()
        .is_socket());
    let sc = Sidecar::start_in(dir, Options::default());
    let (status, v) = sc.get("/health");
    assert_eq!(status, 200, "{v}");
}

#[test]
fn socket_path_that_is_a_regular_file_refuses_to_start() {
    let dir = test_dir();
    let sock = dir.path().join("run/sidecar.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    std::fs::write(&sock, "precious").unwrap();
    let status = run_until_exit(
        serve_command(dir.path(), &Options::default()),
        Duration::from_secs(30),
    )
    .expect("the sidecar must refuse to start");
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.contains("not a socket"), "unclear message:\n{log}");
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "precious");
}

#[test]
fn socket_in_use_by_a_live_server_is_not_stolen() {
    let dir = test_dir();
    let sc = Sidecar::start_in(dir, Options::default());
    let status = run_until_exit(
        serve_command(sc.dir.path(), &Options::default()),
        Duration::from_secs(30),
    )
    .expect("the second sidecar must refuse to start");
    assert!(!status.success());
    // The first one still answers on its socket.
    assert_eq!(sc.get("/health").0, 200);
}

#[test]
fn sigterm_removes_the_socket_and_exits_zero() {
    let mut sc = Sidecar::start();
    assert!(sc.socket.exists());
    let status = sc.stop();
    assert_eq!(status.code(), Some(0), "{status}:\n{}", sc.log());
    assert!(!sc.socket.exists(), "socket left behind");
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let mut sc = Sidecar::start();
    sc.signal(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = sc.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(!sc.socket.exists());
}

/// SIGTERM while a /bash runs: no new connections, the running command finishes and
/// its answer is complete, then the process exits 0.
#[test]
fn inflight_bash_finishes_during_shutdown() {
    let mut sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_GRACE_SECONDS", "30")]));
    let m = unique_marker();
    let socket = sc.socket.clone();
    let command = format!("echo begin; sleep 1.{m}; echo finished");
    let client = std::thread::spawn(move || {
        sidecar_tests::request(
            &socket,
            "POST",
            "/bash",
            &[("content-type", "application/json")],
            json!({"command": command}).to_string().as_bytes(),
        )
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_with(&format!("sleep 1.{m}")).is_empty() {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    sc.signal(15);
    // The socket goes at once: no new connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sc.socket.exists() {
        assert!(Instant::now() < deadline, "socket still there");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = client.join().unwrap();
    assert_eq!(r.status, 200);
    let lines = ndjson(&r.text());
    let out = sidecar_tests::streamed_output(&lines);
    assert_eq!(out, "begin\nfinished\n");
    let last: &Value = lines.last().unwrap();
    assert_eq!(last["type"], "done");
    assert_eq!(last["exitCode"], 0);
    let status = sc.stop();
    assert_eq!(status.code(), Some(0), "{}", sc.log());
}

/// What still runs when the grace period is over is killed, and the server exits.
#[test]
fn shutdown_kills_what_outlives_the_grace_period() {
    let mut sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_GRACE_SECONDS", "1")]));
    let m = unique_marker();
    let mut stream = std::os::unix::net::UnixStream::connect(&sc.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write_request(
        &mut stream,
        "POST",
        "/bash",
        &[("content-type", "application/json")],
        json!({"command": format!("(sleep 60.{m}) & sleep 61.{m}"), "timeoutSeconds": 120})
            .to_string()
            .as_bytes(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_with(&format!("sleep 60.{m}")).is_empty() {
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    sc.signal(15);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = sc.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "did not exit after the grace period"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", sc.log());
    assert!(started.elapsed() < Duration::from_secs(20));
    let left = wait_no_processes(&m, Duration::from_secs(10));
    assert!(left.is_empty(), "left running after shutdown: {left:?}");
    // The client's stream ended (whatever it got).
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(!sc.socket.exists());
}

#[test]
fn healthcheck_command_answers_for_liveness_and_readiness() {
    // What the image's HEALTHCHECK and the Kubernetes probes run.
    let sc = Sidecar::start();
    let socket = sc.socket.to_string_lossy().into_owned();
    for path in ["/health", "/ready"] {
        let out = sidecar_tests::run_cli(
            &["healthcheck", "--path", path],
            &[("SOCKET_PATH", &socket)],
        );
        assert!(out.status.success(), "{path}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 200"),
            "{out:?}"
        );
    }
    // Readiness fails (exit 1) when no language is loaded.
    let empty = tempfile::tempdir().unwrap();
    let no_languages = empty.path().join("languages.toml");
    std::fs::write(&no_languages, "").unwrap();
    let sc2 = Sidecar::start_with(Options {
        plugins_dir: Some(empty.path().to_path_buf()),
        languages: Some(no_languages),
        ..Options::default()
    });
    let socket2 = sc2.socket.to_string_lossy().into_owned();
    let out = sidecar_tests::run_cli(
        &["healthcheck", "--path", "/ready"],
        &[("SOCKET_PATH", &socket2)],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("503"),
        "{out:?}"
    );
    // No server: a clear error, not success.
    let out = sidecar_tests::run_cli(&["healthcheck"], &[("SOCKET_PATH", "/nonexistent/s.sock")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect"),
        "{out:?}"
    );
}

#[test]
fn socket_gid_and_mode_are_applied() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let sc = Sidecar::start_with(Options::with_env(&[
        ("SIDECAR_SOCKET_GID", "4242"),
        ("SIDECAR_SOCKET_MODE", "600"),
    ]));
    let meta = std::fs::metadata(&sc.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.gid(), 4242);
}

#[test]
fn bash_network_setting_lets_bash_reach_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cmd = format!("bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo connected || echo refused");
    // Default: /bash is cut off from the network.
    let sc = Sidecar::start();
    let lines = sc.bash(&json!({"command": cmd}));
    assert_eq!(lines[0]["data"], "refused\n", "{lines:?}");
    drop(sc);
    // SIDECAR_BASH_NETWORK=1: it may connect.
    let sc = Sidecar::start_with(Options::with_env(&[("SIDECAR_BASH_NETWORK", "1")]));
    let lines = sc.bash(&json!({"command": cmd}));
    assert_eq!(lines[0]["data"], "connected\n", "{lines:?}");
}
