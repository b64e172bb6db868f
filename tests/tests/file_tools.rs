//! The file tools over the real socket: /read, /write, /edit, /ls, /find, /grep.
//!
//! Shapes follow the coding sidecar (`{ok: true, result}` / `{ok: false, error}`),
//! with its faults fixed: symlinks are never followed out of the workspace, `..` and
//! foreign absolute paths are refused, writes are atomic, multibyte characters split
//! across request chunks survive.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sidecar_tests::{read_response, Sidecar};

/// The session most tests use.
const S: &str = "t";

fn dir(sc: &Sidecar) -> PathBuf {
    sc.workspace.join(S)
}

/// Creates a file in the session directory (parents too), bypassing the API.
fn put(sc: &Sidecar, rel: &str, content: impl AsRef<[u8]>) {
    let p = dir(sc).join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn mkdir(sc: &Sidecar, rel: &str) {
    std::fs::create_dir_all(dir(sc).join(rel)).unwrap();
}

/// Adds `"sessionId": S` to a request.
fn with_session(mut body: Value) -> Value {
    body["sessionId"] = json!(S);
    body
}

fn ok(sc: &Sidecar, endpoint: &str, body: Value) -> Value {
    sc.ok(endpoint, &with_session(body))
}

/// A 400 with the error envelope; returns the message.
fn err(sc: &Sidecar, endpoint: &str, body: Value) -> String {
    let (status, message) = sc.fails(endpoint, &with_session(body));
    assert_eq!(status, 400, "{endpoint}: {message}");
    message
}

fn files(v: &Value) -> Vec<String> {
    v["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files: {v}"))
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

fn grep(sc: &Sidecar, body: Value) -> Value {
    ok(sc, "/grep", body)
}

fn content(v: &Value) -> &str {
    v["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content: {v}"))
}

const TRUNCATION_KEYS: [&str; 11] = [
    "content",
    "truncated",
    "truncatedBy",
    "totalLines",
    "totalBytes",
    "outputLines",
    "outputBytes",
    "lastLinePartial",
    "firstLineExceedsLimit",
    "maxLines",
    "maxBytes",
];

fn assert_truncation_shape(t: &Value) {
    let mut keys: Vec<&str> = t
        .as_object()
        .unwrap_or_else(|| panic!("truncation is an object: {t}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want = TRUNCATION_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "{t}");
}

/// Standard base64 (for the expected /read image data).
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------- /read

/// Lines are what splitting on `\n` gives, as in the original: a final newline is
/// followed by one more, empty, line, and an empty file has one line.
#[test]
fn read_whole_text_file() {
    let sc = Sidecar::start();
    put(&sc, "a.txt", "one\ntwo\nthree €\n");
    let r = ok(&sc, "/read", json!({"path": "a.txt"}));
    assert_eq!(
        r,
        json!({"type": "text", "content": "one\ntwo\nthree €\n", "totalLines": 4, "hasMore": false})
    );
    // No final newline; an empty file.
    put(&sc, "b.txt", "x\ny");
    let r = ok(&sc, "/read", json!({"path": "b.txt"}));
    assert_eq!(r["content"], "x\ny");
    assert_eq!(r["totalLines"], 2);
    put(&sc, "empty", "");
    let r = ok(&sc, "/read", json!({"path": "empty"}));
    assert_eq!(
        r,
        json!({"type": "text", "content": "", "totalLines": 1, "hasMore": false})
    );
}

/// The selected lines, joined with `\n`, and nothing else: no notice in `content`
/// (clients build their own from `hasMore`).
#[test]
fn read_offset_and_limit() {
    let sc = Sidecar::start();
    let body: String = (1..=14).map(|i| format!("l{i}\n")).collect();
    put(&sc, "f.txt", &body);
    let r = ok(
        &sc,
        "/read",
        json!({"path": "f.txt", "offset": 2, "limit": 2}),
    );
    assert_eq!(
        r,
        json!({
            "type": "text",
            "content": "l2\nl3",
            "totalLines": 15,
            "hasMore": true,
        })
    );
    // To the end: the final newline kept.
    let r = ok(&sc, "/read", json!({"path": "f.txt", "offset": 13}));
    assert_eq!(r["content"], "l13\nl14\n");
    assert_eq!(r["hasMore"], false);
    // A limit that stops at the last text line: the empty line after the final
    // newline is still ahead.
    let r = ok(
        &sc,
        "/read",
        json!({"path": "f.txt", "offset": 12, "limit": 3}),
    );
    assert_eq!(r["content"], "l12\nl13\nl14");
    assert_eq!(r["hasMore"], true);
    // One more takes it: the end.
    let r = ok(
        &sc,
        "/read",
        json!({"path": "f.txt", "offset": 12, "limit": 4}),
    );
    assert_eq!(
        r,
        json!({"type": "text", "content": "l12\nl13\nl14\n", "totalLines": 15, "hasMore": false})
    );
    // That empty line can be read on its own.
    let r = ok(&sc, "/read", json!({"path": "f.txt", "offset": 15}));
    assert_eq!(
        r,
        json!({"type": "text", "content": "", "totalLines": 15, "hasMore": false})
    );
}

#[test]
fn read_truncates_at_2000_lines() {
    let sc = Sidecar::start();
    let body: String = (1..=2500).map(|i| format!("line {i}\n")).collect();
    put(&sc, "long.txt", &body);
    let r = ok(&sc, "/read", json!({"path": "long.txt"}));
    assert_eq!(r["type"], "text");
    assert_eq!(r["totalLines"], 2501);
    assert_eq!(r["hasMore"], true);
    let shown: String = (1..=2000)
        .map(|i| format!("line {i}"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(content(&r), shown);
    let t = &r["truncation"];
    assert_truncation_shape(t);
    assert_eq!(t["content"], shown.as_str());
    assert_eq!(t["truncated"], true);
    assert_eq!(t["truncatedBy"], "lines");
    assert_eq!(t["totalLines"], 2501);
    assert_eq!(t["totalBytes"], body.len());
    assert_eq!(t["outputLines"], 2000);
    assert_eq!(t["outputBytes"], shown.len());
    assert_eq!(t["lastLinePartial"], false);
    assert_eq!(t["firstLineExceedsLimit"], false);
    assert_eq!(t["maxLines"], 2000);
    assert_eq!(t["maxBytes"], 51200);
    // Continuing after the shown lines.
    let r = ok(&sc, "/read", json!({"path": "long.txt", "offset": 2001}));
    assert!(content(&r).starts_with("line 2001\n"));
    assert!(content(&r).ends_with("line 2500\n"));
    assert_eq!(r["hasMore"], false);
}

#[test]
fn read_truncates_at_50kb_keeping_whole_lines() {
    let sc = Sidecar::start();
    // 1000 lines of 99 characters: 512 fit in 51200 bytes (99 + 511 * 100).
    let line = "é".repeat(2) + &"x".repeat(95); // 99 bytes, multibyte at the start
    let body: String = (0..1000).map(|_| format!("{line}\n")).collect();
    put(&sc, "wide.txt", &body);
    let r = ok(&sc, "/read", json!({"path": "wide.txt"}));
    let t = &r["truncation"];
    assert_truncation_shape(t);
    assert_eq!(t["truncatedBy"], "bytes");
    assert_eq!(t["outputLines"], 512);
    assert_eq!(t["outputBytes"], 99 + 511 * 100);
    assert_eq!(t["totalLines"], 1001);
    assert_eq!(t["totalBytes"], body.len());
    assert_eq!(r["hasMore"], true);
    assert_eq!(r["totalLines"], 1001);
    // The kept lines only, whole, without a notice.
    assert_eq!(r["content"], t["content"]);
    let lines: Vec<&str> = content(&r).split('\n').collect();
    assert_eq!(lines.len(), 512);
    for l in lines {
        assert_eq!(l, line);
    }
}

#[test]
fn read_first_line_over_the_limit() {
    let sc = Sidecar::start();
    put(&sc, "big.txt", format!("{}\nsecond\n", "x".repeat(60000)));
    let r = ok(&sc, "/read", json!({"path": "big.txt"}));
    // Nothing is shown: the original returned an empty content.
    assert_eq!(content(&r), "");
    assert_eq!(r["hasMore"], true);
    assert_eq!(r["totalLines"], 3);
    let t = &r["truncation"];
    assert_truncation_shape(t);
    assert_eq!(t["firstLineExceedsLimit"], true);
    assert_eq!(t["truncatedBy"], "bytes");
    assert_eq!(t["outputLines"], 0);
    assert_eq!(t["content"], "");
    // The second line alone is fine.
    let r = ok(&sc, "/read", json!({"path": "big.txt", "offset": 2}));
    assert_eq!(r["content"], "second\n");
}

#[test]
fn read_images_as_base64() {
    let sc = Sidecar::start();
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
        .iter()
        .copied()
        .chain((0..=255u8).rev())
        .collect();
    put(&sc, "img/pic.png", &png);
    let r = ok(&sc, "/read", json!({"path": "img/pic.png"}));
    assert_eq!(
        r,
        json!({"type": "image", "data": base64(&png), "mimeType": "image/png"})
    );
    for (name, mime) in [
        ("a.JPG", "image/jpeg"),
        ("b.jpeg", "image/jpeg"),
        ("c.gif", "image/gif"),
        ("d.webp", "image/webp"),
    ] {
        put(&sc, name, b"\0\x01\x02");
        let r = ok(&sc, "/read", json!({"path": name}));
        assert_eq!(r["type"], "image", "{name}");
        assert_eq!(r["mimeType"], mime, "{name}");
        assert_eq!(r["data"], "AAEC", "{name}");
    }
}

#[test]
fn read_errors() {
    let sc = Sidecar::start();
    put(&sc, "f.txt", "a\nb\nc\n");
    mkdir(&sc, "d");
    put(&sc, "bin.dat", b"abc\0def\n");
    assert_eq!(
        err(&sc, "/read", json!({"path": "f.txt", "offset": 0})),
        "Offset must be >= 1"
    );
    assert_eq!(
        err(&sc, "/read", json!({"path": "f.txt", "offset": -3})),
        "Offset must be >= 1"
    );
    assert_eq!(
        err(&sc, "/read", json!({"path": "f.txt", "offset": 20})),
        "Offset 20 is beyond end of file (4 lines total)"
    );
    assert_eq!(
        err(&sc, "/read", json!({"path": "f.txt", "offset": 5})),
        "Offset 5 is beyond end of file (4 lines total)"
    );
    assert_eq!(
        ok(&sc, "/read", json!({"path": "f.txt", "offset": 4}))["content"],
        ""
    );
    assert_eq!(err(&sc, "/read", json!({})), "Missing or invalid path");
    assert_eq!(
        err(&sc, "/read", json!({"path": "  "})),
        "Missing or invalid path"
    );
    let m = err(&sc, "/read", json!({"path": "nope.txt"}));
    assert!(m.contains("No such file") && m.contains("nope.txt"), "{m}");
    let m = err(&sc, "/read", json!({"path": "d"}));
    assert!(m.contains("directory"), "{m}");
    let m = err(&sc, "/read", json!({"path": "bin.dat"}));
    assert!(m.contains("binary"), "{m}");
    let m = err(&sc, "/read", json!({"path": 5}));
    assert!(m.contains("invalid"), "{m}");
}

// ---------------------------------------------------------------- /write

#[test]
fn write_creates_parents_and_returns_bytes() {
    let sc = Sidecar::start();
    let r = ok(
        &sc,
        "/write",
        json!({"path": "deep/er/new.txt", "content": "hello\n"}),
    );
    assert_eq!(
        r,
        json!({"ok": true, "path": "deep/er/new.txt", "bytes": 6})
    );
    assert_eq!(
        std::fs::read_to_string(dir(&sc).join("deep/er/new.txt")).unwrap(),
        "hello\n"
    );
    // Bytes are UTF-8 bytes; the path is normalized.
    let r = ok(
        &sc,
        "/write",
        json!({"path": "./deep/x/../m.txt", "content": "€😀é"}),
    );
    assert_eq!(r, json!({"ok": true, "path": "deep/m.txt", "bytes": 9}));
    assert!(!dir(&sc).join("deep/x").exists());
    // Overwrite, and empty content.
    let r = ok(&sc, "/write", json!({"path": "deep/m.txt", "content": ""}));
    assert_eq!(r["bytes"], 0);
    assert_eq!(std::fs::read(dir(&sc).join("deep/m.txt")).unwrap(), b"");
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(dir(&sc).join("deep"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["er", "m.txt"]);
}

#[test]
fn write_errors() {
    let sc = Sidecar::start();
    mkdir(&sc, "d");
    assert_eq!(
        err(&sc, "/write", json!({"content": "x"})),
        "Missing or invalid path"
    );
    assert_eq!(
        err(&sc, "/write", json!({"path": "a.txt"})),
        "Missing or invalid content"
    );
    let m = err(&sc, "/write", json!({"path": "d", "content": "x"}));
    assert!(m.contains("directory"), "{m}");
    let m = err(&sc, "/write", json!({"path": "a.txt", "content": 5}));
    assert!(m.contains("invalid"), "{m}");
    assert!(!dir(&sc).join("a.txt").exists());
}

#[test]
fn multibyte_content_survives_write_then_read() {
    let sc = Sidecar::start();
    let text = "€😀 naïve 日本語\n".repeat(1000);
    let r = ok(&sc, "/write", json!({"path": "u.txt", "content": text}));
    assert_eq!(r["bytes"], text.len());
    let r = ok(&sc, "/read", json!({"path": "u.txt"}));
    assert_eq!(r["content"], text.as_str());
    assert_eq!(
        std::fs::read_to_string(dir(&sc).join("u.txt")).unwrap(),
        text
    );
}

/// The original decoded each request chunk on its own, so a character split between
/// two TCP/socket reads became U+FFFD. Send the body in two writes, split inside `€`.
#[test]
fn multibyte_split_across_request_chunks() {
    let sc = Sidecar::start();
    let body = json!({"sessionId": S, "path": "split.txt", "content": "ab€😀cd"}).to_string();
    let bytes = body.as_bytes();
    let euro = body.find('€').unwrap();
    let mut stream = UnixStream::connect(&sc.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST /write HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // First part ends after the first byte of `€`; then the 😀 is split too.
    stream.write_all(&bytes[..euro + 1]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(&bytes[euro + 1..euro + 5]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(&bytes[euro + 5..]).unwrap();
    let resp = read_response(stream);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["result"]["bytes"], "ab€😀cd".len());
    assert_eq!(
        std::fs::read_to_string(dir(&sc).join("split.txt")).unwrap(),
        "ab€😀cd"
    );
    let r = ok(&sc, "/read", json!({"path": "split.txt"}));
    assert_eq!(r["content"], "ab€😀cd");
}

/// Readers never see half a file: a writer rewrites a 2 MB file with alternating
/// contents (through /write) while readers read it directly and through /read.
#[test]
fn write_is_atomic_under_concurrent_readers() {
    let sc = Arc::new(Sidecar::start());
    const SIZE: usize = 2 << 20;
    let versions: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|c| {
            let line = format!("{}\n", c.repeat(99));
            line.repeat(SIZE / line.len())
        })
        .collect();
    ok(
        &sc,
        "/write",
        json!({"path": "big.txt", "content": versions[0]}),
    );
    let path = dir(&sc).join("big.txt");
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    // Direct readers: the whole file must be one version.
    for _ in 0..2 {
        let (path, stop, versions) = (path.clone(), stop.clone(), versions.clone());
        readers.push(std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let got = std::fs::read_to_string(&path).expect("the file always exists");
                assert!(
                    versions.contains(&got),
                    "read a torn file of {} bytes starting {:?}",
                    got.len(),
                    &got[..got.len().min(20)]
                );
                reads += 1;
            }
            reads
        }));
    }
    // An API reader: /read's first 50 KB is always one version's head.
    {
        let (sc, stop, versions) = (sc.clone(), stop.clone(), versions.clone());
        readers.push(std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = ok(&sc, "/read", json!({"path": "big.txt"}));
                assert_eq!(r["totalLines"], SIZE / 100 + 1, "whole file counted");
                let shown = r["truncation"]["content"].as_str().unwrap();
                assert!(versions.iter().any(|v| v.starts_with(shown)), "torn /read");
                reads += 1;
            }
            reads
        }));
    }
    // Writers: two threads writing different versions.
    let writers: Vec<_> = [1usize, 2]
        .into_iter()
        .map(|i| {
            let (sc, v) = (sc.clone(), versions[i].clone());
            std::thread::spawn(move || {
                for _ in 0..15 {
                    let r = ok(&sc, "/write", json!({"path": "big.txt", "content": v}));
                    assert_eq!(r["bytes"], v.len());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let reads = r.join().expect("a reader saw a torn file");
        assert!(reads > 0);
    }
    let last = std::fs::read_to_string(&path).unwrap();
    assert!(last == versions[1] || last == versions[2]);
    // No temporary files left.
    let left: Vec<String> = std::fs::read_dir(dir(&sc))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["big.txt"]);
}

// ---------------------------------------------------------------- /edit

/// The diff is the original's: numbered lines, 4 lines of context, `...` for skipped
/// ones, no header.
#[test]
fn edit_replaces_once_and_returns_the_originals_diff() {
    let sc = Sidecar::start();
    let body: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    put(&sc, "src/f.txt", &body);
    let r = ok(
        &sc,
        "/edit",
        json!({"path": "src/f.txt", "oldText": "line 5\n", "newText": "line five €\nextra\n"}),
    );
    assert_eq!(
        r,
        json!({
            "ok": true,
            "path": "src/f.txt",
            "diff": "  1 line 1\n  2 line 2\n  3 line 3\n  4 line 4\n- 5 line 5\n+ 5 line five €\n+ 6 extra\n  6 line 6\n  7 line 7\n  8 line 8\n  9 line 9\n    ...",
        })
    );
    assert_eq!(
        std::fs::read_to_string(dir(&sc).join("src/f.txt")).unwrap(),
        body.replace("line 5\n", "line five €\nextra\n")
    );
    // Deleting text (empty newText) is an edit too; the path is echoed as sent.
    let r = ok(
        &sc,
        "/edit",
        json!({"path": "./src/../src/f.txt", "oldText": "extra\n", "newText": ""}),
    );
    assert_eq!(
        r,
        json!({
            "ok": true,
            "path": "./src/../src/f.txt",
            "diff": "    ...\n  2 line 2\n  3 line 3\n  4 line 4\n  5 line five €\n- 6 extra\n  7 line 6\n  8 line 7\n  9 line 8\n 10 line 9\n    ...",
        })
    );
}

#[test]
fn edit_errors_leave_the_file_alone() {
    let sc = Sidecar::start();
    put(&sc, "f.txt", "alpha X beta X gamma\n");
    let m = err(
        &sc,
        "/edit",
        json!({"path": "f.txt", "oldText": "delta", "newText": "x"}),
    );
    assert_eq!(
        m,
        "Could not find the exact text in f.txt. The old text must match exactly including all whitespace and newlines."
    );
    let m = err(
        &sc,
        "/edit",
        json!({"path": "f.txt", "oldText": "X", "newText": "Y"}),
    );
    assert_eq!(
        m,
        "Found 2 occurrences of the text in f.txt. The text must be unique. Please provide more context to make it unique."
    );
    let m = err(
        &sc,
        "/edit",
        json!({"path": "f.txt", "oldText": "alpha", "newText": "alpha"}),
    );
    assert_eq!(
        m,
        "No changes made to f.txt. The replacement produced identical content. This might indicate an issue with special characters or the text not existing as expected."
    );
    assert_eq!(
        err(
            &sc,
            "/edit",
            json!({"path": "f.txt", "oldText": "", "newText": "x"})
        ),
        "Missing or invalid oldText"
    );
    assert_eq!(
        err(&sc, "/edit", json!({"path": "f.txt", "oldText": "alpha"})),
        "Missing or invalid newText"
    );
    assert_eq!(
        err(&sc, "/edit", json!({"oldText": "a", "newText": "b"})),
        "Missing or invalid path"
    );
    let m = err(
        &sc,
        "/edit",
        json!({"path": "missing.txt", "oldText": "a", "newText": "b"}),
    );
    assert!(m.contains("No such file"), "{m}");
    assert_eq!(
        std::fs::read_to_string(dir(&sc).join("f.txt")).unwrap(),
        "alpha X beta X gamma\n"
    );
    assert!(!dir(&sc).join("missing.txt").exists());
}

// ---------------------------------------------------------------- /ls

/// Sorted as the original's `localeCompare` of lowercased names: punctuation before
/// digits before letters, `_` before `.`.
#[test]
fn ls_sorts_case_insensitively_with_dir_suffix_and_dotfiles() {
    let sc = Sidecar::start();
    for f in ["b.txt", "A.md", ".hidden", "e.TXT", "_u"] {
        put(&sc, f, "");
    }
    for d in ["c", "D", ".git"] {
        mkdir(&sc, d);
    }
    let r = ok(&sc, "/ls", json!({}));
    assert_eq!(
        r,
        json!({"output": "_u\n.git/\n.hidden\nA.md\nb.txt\nc/\nD/\ne.TXT"})
    );
    // Explicit path, and ".".
    put(&sc, "c/inner.txt", "");
    assert_eq!(
        ok(&sc, "/ls", json!({"path": "c"})),
        json!({"output": "inner.txt"})
    );
    assert_eq!(ok(&sc, "/ls", json!({"path": "."})), r);
    // Empty directory.
    assert_eq!(
        ok(&sc, "/ls", json!({"path": "D"})),
        json!({"output": "(empty directory)"})
    );
}

#[test]
fn ls_limit_notice() {
    let sc = Sidecar::start();
    for i in 0..5 {
        put(&sc, &format!("f{i}"), "");
    }
    let r = ok(&sc, "/ls", json!({"limit": 2}));
    assert_eq!(
        r,
        json!({
            "output": "f0\nf1\n\n[2 entries limit reached. Use limit=4 for more]",
            "entryLimitReached": true,
        })
    );
    // Exactly at the limit: no notice.
    let r = ok(&sc, "/ls", json!({"limit": 5}));
    assert_eq!(r, json!({"output": "f0\nf1\nf2\nf3\nf4"}));
    // The default limit is 500.
    for i in 5..501 {
        put(&sc, &format!("f{i:03}"), "");
    }
    let r = ok(&sc, "/ls", json!({}));
    let out = r["output"].as_str().unwrap();
    assert!(
        out.ends_with("\n\n[500 entries limit reached. Use limit=1000 for more]"),
        "{}",
        &out[out.len() - 100..]
    );
    assert_eq!(out.split("\n\n").next().unwrap().lines().count(), 500);
}

#[test]
fn ls_errors() {
    let sc = Sidecar::start();
    put(&sc, "f.txt", "");
    assert_eq!(
        err(&sc, "/ls", json!({"path": "f.txt"})),
        "Path is not a directory: f.txt"
    );
    let m = err(&sc, "/ls", json!({"path": "nope"}));
    assert!(m.contains("No such file"), "{m}");
}

// ---------------------------------------------------------------- /find

fn find_tree(sc: &Sidecar) {
    for f in [
        "main.rs",
        "MAIN.RS",
        "README.md",
        "src/lib.rs",
        "src/a/mod.rs",
        "src/a/deep/x.rs",
        "src/a/deep/y.txt",
        ".hidden/h.rs",
        ".dot.rs",
        "target/debug/gen.rs",
        "logs/app.log",
        "vendor/v.rs",
        ".git/hooks/pre.rs",
    ] {
        put(sc, f, "");
    }
    mkdir(sc, "dir.rs");
    put(sc, ".gitignore", "target/\n*.log\n");
    put(sc, "src/.ignore", "deep/\n");
}

#[test]
fn find_name_globs_match_at_any_depth() {
    let sc = Sidecar::start();
    find_tree(&sc);
    let r = ok(&sc, "/find", json!({"pattern": "*.rs"}));
    assert_eq!(
        r,
        json!({
            "files": [".dot.rs", ".hidden/h.rs", "main.rs", "src/a/mod.rs", "src/lib.rs", "vendor/v.rs"],
            "truncated": false,
            "limit": 1000,
        })
    );
    // A plain name; case-sensitive; alternatives.
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "mod.rs"}))),
        ["src/a/mod.rs"]
    );
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "*.RS"}))),
        ["MAIN.RS"]
    );
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "*.{md,gitignore}"}))),
        [".gitignore", "README.md"]
    );
    // Relative to the search directory (whose ancestors' ignore files still apply);
    // its path is trimmed, as the original did.
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "*.rs", "path": "src"}))),
        ["a/mod.rs", "lib.rs"]
    );
    assert_eq!(
        files(&ok(
            &sc,
            "/find",
            json!({"pattern": "*.rs", "path": " src\t"})
        )),
        ["a/mod.rs", "lib.rs"]
    );
}

#[test]
fn find_path_globs_match_relative_paths() {
    let sc = Sidecar::start();
    find_tree(&sc);
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "src/**/*.rs"}))),
        ["src/a/mod.rs", "src/lib.rs"]
    );
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "src/*.rs"}))),
        ["src/lib.rs"]
    );
    assert_eq!(
        files(&ok(
            &sc,
            "/find",
            json!({"pattern": "*/mod.rs", "path": "src"})
        )),
        ["a/mod.rs"]
    );
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "**/*.rs"}))),
        [
            ".dot.rs",
            ".hidden/h.rs",
            "main.rs",
            "src/a/mod.rs",
            "src/lib.rs",
            "vendor/v.rs"
        ]
    );
    // `*` does not cross `/`.
    assert!(files(&ok(
        &sc,
        "/find",
        json!({"pattern": "*/lib.rs", "path": "."})
    ))
    .contains(&"src/lib.rs".to_string()));
    assert!(files(&ok(&sc, "/find", json!({"pattern": "*/mod.rs"}))).is_empty());
}

#[test]
fn find_honours_ignore_files_and_includes_hidden() {
    let sc = Sidecar::start();
    find_tree(&sc);
    let r = ok(&sc, "/find", json!({"pattern": "*"}));
    assert_eq!(
        files(&r),
        [
            ".dot.rs",
            ".gitignore",
            ".hidden/h.rs",
            "MAIN.RS",
            "README.md",
            "main.rs",
            "src/.ignore",
            "src/a/mod.rs",
            "src/lib.rs",
            "vendor/v.rs",
        ]
    );
    // A nested .gitignore, and a negation.
    put(&sc, "vendor/.gitignore", "*.rs\n!keep.rs\n");
    put(&sc, "vendor/keep.rs", "");
    assert_eq!(
        files(&ok(
            &sc,
            "/find",
            json!({"pattern": "*.rs", "path": "vendor"})
        )),
        ["keep.rs"]
    );
}

#[test]
fn find_limit_truncates_sorted_output() {
    let sc = Sidecar::start();
    for i in (0..12).rev() {
        put(&sc, &format!("d{}/f{i:02}.txt", i % 3), "");
    }
    let r = ok(&sc, "/find", json!({"pattern": "*.txt", "limit": 5}));
    assert_eq!(
        files(&r),
        [
            "d0/f00.txt",
            "d0/f03.txt",
            "d0/f06.txt",
            "d0/f09.txt",
            "d1/f01.txt"
        ]
    );
    assert_eq!(r["truncated"], true);
    assert_eq!(r["limit"], 5);
    let t = &r["truncation"];
    assert_truncation_shape(t);
    assert_eq!(t["truncatedBy"], "lines");
    assert_eq!(t["totalLines"], 12);
    assert_eq!(t["outputLines"], 5);
    assert_eq!(t["maxLines"], 5);
    assert_eq!(t["content"], files(&r).join("\n"));
    let r = ok(&sc, "/find", json!({"pattern": "*.txt", "limit": 12}));
    assert_eq!(r["truncated"], false);
    assert_eq!(files(&r).len(), 12);
    assert!(r.get("truncation").is_none());
}

#[test]
fn find_empty_result_and_errors() {
    let sc = Sidecar::start();
    put(&sc, "f.txt", "");
    assert_eq!(
        ok(&sc, "/find", json!({"pattern": "*.none"})),
        json!({"files": [], "truncated": false, "limit": 1000})
    );
    assert_eq!(err(&sc, "/find", json!({})), "Missing or invalid pattern");
    let m = err(&sc, "/find", json!({"pattern": "a["}));
    assert!(m.starts_with("Invalid glob pattern"), "{m}");
    let m = err(&sc, "/find", json!({"pattern": "*", "path": "f.txt"}));
    assert!(m.contains("not a directory"), "{m}");
    let m = err(&sc, "/find", json!({"pattern": "*", "path": "nope"}));
    assert!(m.contains("No such file"), "{m}");
}

// ---------------------------------------------------------------- /grep

fn grep_tree(sc: &Sidecar) {
    put(
        sc,
        "g/x.txt",
        "a\nb\nfoo 1\nc\nd\ne\nfoo 2\nf\ng\nh\ni\nj\nfoo 3\nk\n",
    );
    put(sc, "g/sub/y.md", "Foo\nfoo\n");
    put(sc, "g/bin.dat", b"foo\0binary\n");
    put(sc, "g/.hid", "foo hidden\n");
    put(sc, "g/.gitignore", "ignored/\n");
    put(sc, "g/ignored/z.txt", "foo ignored\n");
}

#[test]
fn grep_format_and_order() {
    let sc = Sidecar::start();
    grep_tree(&sc);
    let r = grep(&sc, json!({"pattern": "foo", "path": "g"}));
    assert_eq!(
        r,
        json!({"content": ".hid:1: foo hidden\nsub/y.md:2: foo\nx.txt:3: foo 1\nx.txt:7: foo 2\nx.txt:13: foo 3"})
    );
    // A file as path: shown relative to the session directory.
    let r = grep(&sc, json!({"pattern": "foo \\d", "path": "g/x.txt"}));
    assert_eq!(
        content(&r),
        "g/x.txt:3: foo 1\ng/x.txt:7: foo 2\ng/x.txt:13: foo 3"
    );
    // Default path is the session directory.
    let r = grep(&sc, json!({"pattern": "foo 2"}));
    assert_eq!(content(&r), "g/x.txt:7: foo 2");
    // The pattern is trimmed, as the original did.
    let r = grep(&sc, json!({"pattern": "  foo 2\n"}));
    assert_eq!(content(&r), "g/x.txt:7: foo 2");
}

#[test]
fn grep_context_merges_groups_and_separates_with_dashes() {
    let sc = Sidecar::start();
    grep_tree(&sc);
    let r = grep(
        &sc,
        json!({"pattern": "foo \\d|^foo$", "path": "g", "context": 2}),
    );
    assert_eq!(
        content(&r),
        "sub/y.md-1- Foo\nsub/y.md:2: foo\n--\nx.txt-1- a\nx.txt-2- b\nx.txt:3: foo 1\nx.txt-4- c\nx.txt-5- d\nx.txt-6- e\nx.txt:7: foo 2\nx.txt-8- f\nx.txt-9- g\n--\nx.txt-11- i\nx.txt-12- j\nx.txt:13: foo 3\nx.txt-14- k"
    );
    // context 1: three separate groups in x.txt.
    let r = grep(
        &sc,
        json!({"pattern": "foo \\d", "path": "g/x.txt", "context": 1}),
    );
    assert_eq!(
        content(&r),
        "g/x.txt-2- b\ng/x.txt:3: foo 1\ng/x.txt-4- c\n--\ng/x.txt-6- e\ng/x.txt:7: foo 2\ng/x.txt-8- f\n--\ng/x.txt-12- j\ng/x.txt:13: foo 3\ng/x.txt-14- k"
    );
}

#[test]
fn grep_limit_notice() {
    let sc = Sidecar::start();
    grep_tree(&sc);
    let r = grep(&sc, json!({"pattern": "foo", "path": "g", "limit": 2}));
    assert_eq!(
        r,
        json!({
            "content": ".hid:1: foo hidden\nsub/y.md:2: foo\n\n[2 matches limit reached. Use limit=4 for more, or refine pattern]",
            "details": {"matchLimitReached": 2},
        })
    );
    // Exactly at the limit: no notice.
    let r = grep(&sc, json!({"pattern": "foo \\d", "path": "g", "limit": 3}));
    assert!(r.get("details").is_none(), "{r}");
    // The default limit is 100 matches.
    let many: String = (0..150).map(|i| format!("hit {i}\n")).collect();
    put(&sc, "many.txt", many);
    let r = grep(&sc, json!({"pattern": "hit", "path": "many.txt"}));
    let text = content(&r);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("many.txt:")).count(),
        100
    );
    assert!(text
        .ends_with("\n\n[100 matches limit reached. Use limit=200 for more, or refine pattern]"));
    assert_eq!(r["details"]["matchLimitReached"], 100);
}

#[test]
fn grep_options_ignore_case_literal_glob() {
    let sc = Sidecar::start();
    grep_tree(&sc);
    put(&sc, "g/lit.txt", "a.b\naxb\n(x)\n");
    // ignoreCase.
    let r = grep(
        &sc,
        json!({"pattern": "FOO$", "path": "g/sub", "ignoreCase": true}),
    );
    assert_eq!(content(&r), "y.md:1: Foo\ny.md:2: foo");
    let r = grep(&sc, json!({"pattern": "FOO$", "path": "g/sub"}));
    assert_eq!(content(&r), "No matches found");
    // literal vs regex.
    let r = grep(&sc, json!({"pattern": "a.b", "path": "g/lit.txt"}));
    assert_eq!(content(&r), "g/lit.txt:1: a.b\ng/lit.txt:2: axb");
    let r = grep(
        &sc,
        json!({"pattern": "a.b", "path": "g/lit.txt", "literal": true}),
    );
    assert_eq!(content(&r), "g/lit.txt:1: a.b");
    let r = grep(
        &sc,
        json!({"pattern": "(x)", "path": "g/lit.txt", "literal": true}),
    );
    assert_eq!(content(&r), "g/lit.txt:3: (x)");
    // glob: name at any depth, negation.
    let r = grep(&sc, json!({"pattern": "foo", "path": "g", "glob": "*.md"}));
    assert_eq!(content(&r), "sub/y.md:2: foo");
    let r = grep(
        &sc,
        json!({"pattern": "foo", "path": "g", "glob": "!*.txt"}),
    );
    assert_eq!(content(&r), ".hid:1: foo hidden\nsub/y.md:2: foo");
}

#[test]
fn grep_skips_binary_and_ignored_files_and_says_no_matches() {
    let sc = Sidecar::start();
    grep_tree(&sc);
    let r = grep(&sc, json!({"pattern": "binary|foo ignored", "path": "g"}));
    assert_eq!(r, json!({"content": "No matches found"}));
    let r = grep(&sc, json!({"pattern": "zzz_nothing"}));
    assert_eq!(r, json!({"content": "No matches found"}));
}

#[test]
fn grep_cuts_long_lines() {
    let sc = Sidecar::start();
    put(
        &sc,
        "long.txt",
        format!("needle {}\nshort needle\n", "é".repeat(700)),
    );
    let r = grep(&sc, json!({"pattern": "needle", "path": "long.txt"}));
    let text = content(&r);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("long.txt:1: needle éé"), "{first}");
    assert!(first.ends_with("... [truncated]"), "{first}");
    let shown = first
        .strip_prefix("long.txt:1: ")
        .unwrap()
        .strip_suffix("... [truncated]")
        .unwrap();
    assert_eq!(shown.chars().count(), 500);
    assert!(text.contains("\nlong.txt:2: short needle\n"));
    // 500 means JavaScript string length (UTF-16 units): 250 emoji.
    put(&sc, "emoji.txt", format!("needle{}\n", "😀".repeat(300)));
    let r = grep(&sc, json!({"pattern": "needle", "path": "emoji.txt"}));
    assert_eq!(
        content(&r),
        format!(
            "emoji.txt:1: needle{}... [truncated]\n\n[Some lines truncated to 500 chars. Use read tool to see full lines]",
            "😀".repeat(247)
        )
    );
    assert!(
        text.ends_with("\n\n[Some lines truncated to 500 chars. Use read tool to see full lines]")
    );
    assert_eq!(r["details"], json!({"linesTruncated": true}));
}

#[test]
fn grep_output_capped_at_50kb() {
    let sc = Sidecar::start();
    let body: String = (0..2000)
        .map(|i| format!("match {i:04} {}\n", "x".repeat(60)))
        .collect();
    put(&sc, "m.txt", body);
    let r = grep(
        &sc,
        json!({"pattern": "match", "path": "m.txt", "limit": 5000}),
    );
    let text = content(&r);
    assert!(
        text.ends_with("\n\n[50KB limit reached]"),
        "{}",
        &text[text.len() - 80..]
    );
    let t = &r["details"]["truncation"];
    assert_truncation_shape(t);
    assert_eq!(t["truncatedBy"], "bytes");
    assert!(t["outputBytes"].as_u64().unwrap() <= 51200);
    assert!(
        r["details"].get("matchLimitReached").is_none(),
        "{}",
        r["details"]
    );
    // Whole lines only.
    for l in t["content"].as_str().unwrap().lines() {
        assert!(
            l.starts_with("m.txt:") && l.ends_with(&"x".repeat(60)),
            "{l}"
        );
    }
}

#[test]
fn grep_errors() {
    let sc = Sidecar::start();
    assert_eq!(err(&sc, "/grep", json!({})), "Missing or invalid pattern");
    assert_eq!(
        err(&sc, "/grep", json!({"pattern": " \t\n"})),
        "Missing or invalid pattern"
    );
    let m = err(&sc, "/grep", json!({"pattern": "a("}));
    assert!(m.starts_with("Invalid regex pattern"), "{m}");
    let m = err(&sc, "/grep", json!({"pattern": "a", "path": "nope"}));
    assert!(m.contains("No such file"), "{m}");
}

// ---------------------------------------------------------------- confinement

/// Plants `leak -> /etc/passwd` and `linkdir -> /etc` with /bash (as an agent would),
/// then tries every tool through them: each is refused with a clear error, and
/// nothing outside the workspace is read or written.
#[test]
fn symlink_escapes_are_refused() {
    let sc = Sidecar::start();
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let lines = sc.bash(&json!({
        "sessionId": S,
        "command": "ln -s /etc/passwd leak && ln -s /etc linkdir && ln -s / rootlink && echo planted",
    }));
    let out = sidecar_tests::streamed_output(&lines);
    assert_eq!(out, "planted\n", "{lines:?}");

    let refused = |endpoint: &str, body: Value| {
        let m = err(&sc, endpoint, body.clone());
        assert!(
            m.contains("symbolic link"),
            "{endpoint} {body}: unclear error {m:?}"
        );
        assert!(!m.contains("root:x:0:0"), "{m}");
    };
    refused("/read", json!({"path": "leak"}));
    refused("/read", json!({"path": "linkdir/passwd"}));
    refused("/read", json!({"path": "rootlink/etc/passwd"}));
    refused("/write", json!({"path": "leak", "content": "pwned"}));
    refused(
        "/write",
        json!({"path": "linkdir/sidecar-test-escape", "content": "pwned"}),
    );
    refused(
        "/edit",
        json!({"path": "leak", "oldText": "root", "newText": "toor"}),
    );
    refused(
        "/edit",
        json!({"path": "linkdir/passwd", "oldText": "root", "newText": "toor"}),
    );
    refused("/ls", json!({"path": "linkdir"}));
    refused("/ls", json!({"path": "rootlink/etc"}));
    refused("/find", json!({"pattern": "*", "path": "linkdir"}));
    refused("/grep", json!({"pattern": "root", "path": "leak"}));
    refused("/grep", json!({"pattern": "root", "path": "linkdir"}));
    refused(
        "/grep",
        json!({"pattern": "root", "path": "linkdir/passwd"}),
    );

    // Walks do not follow them either; ls lists them as names only.
    assert_eq!(
        ok(&sc, "/grep", json!({"pattern": "root"})),
        json!({"content": "No matches found"})
    );
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "*"}))),
        Vec::<String>::new()
    );
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "passwd"}))),
        Vec::<String>::new()
    );
    assert_eq!(
        ok(&sc, "/ls", json!({})),
        json!({"output": "leak\nlinkdir\nrootlink"})
    );

    // Nothing outside was touched; the links are still links.
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
    assert!(!Path::new("/etc/sidecar-test-escape").exists());
    for l in ["leak", "linkdir", "rootlink"] {
        assert!(std::fs::symlink_metadata(dir(&sc).join(l))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]
fn dotdot_and_foreign_absolute_paths_are_refused() {
    let sc = Sidecar::start();
    // Another session's file, and one beside the workspace.
    std::fs::create_dir_all(sc.workspace.join("other")).unwrap();
    std::fs::write(sc.workspace.join("other/secret.txt"), "other's secret\n").unwrap();
    std::fs::write(sc.dir.path().join("outside.txt"), "outside secret\n").unwrap();
    mkdir(&sc, "sub");
    let other_abs = sc.workspace.join("other/secret.txt");
    let outside_abs = sc.dir.path().join("outside.txt");
    let targets = [
        "../other/secret.txt".to_string(),
        "sub/../../other/secret.txt".to_string(),
        "../../outside.txt".to_string(),
        other_abs.to_string_lossy().into_owned(),
        outside_abs.to_string_lossy().into_owned(),
        "/etc/passwd".to_string(),
    ];
    for p in &targets {
        let m = err(&sc, "/read", json!({"path": p}));
        assert!(
            m.contains("escapes the workspace") || m.contains("outside the workspace"),
            "{p}: {m}"
        );
        err(&sc, "/write", json!({"path": p, "content": "pwned"}));
        err(
            &sc,
            "/edit",
            json!({"path": p, "oldText": "secret", "newText": "x"}),
        );
        err(&sc, "/grep", json!({"pattern": "secret", "path": p}));
    }
    for p in ["..", "../other", "/etc", "/"] {
        err(&sc, "/ls", json!({"path": p}));
        err(&sc, "/find", json!({"pattern": "*", "path": p}));
        err(&sc, "/grep", json!({"pattern": "secret", "path": p}));
    }
    assert_eq!(
        std::fs::read_to_string(&other_abs).unwrap(),
        "other's secret\n"
    );
    assert_eq!(
        std::fs::read_to_string(&outside_abs).unwrap(),
        "outside secret\n"
    );
    // `..` that stays inside is fine.
    put(&sc, "f.txt", "inside\n");
    let r = ok(&sc, "/read", json!({"path": "sub/../f.txt"}));
    assert_eq!(r["content"], "inside\n");
}

#[test]
fn absolute_paths_inside_the_session_are_accepted() {
    let sc = Sidecar::start();
    let abs = dir(&sc).join("abs/dir/f.txt");
    let abs_s = abs.to_string_lossy().into_owned();
    let r = ok(&sc, "/write", json!({"path": abs_s, "content": "one\n"}));
    assert_eq!(r, json!({"ok": true, "path": "abs/dir/f.txt", "bytes": 4}));
    assert_eq!(std::fs::read_to_string(&abs).unwrap(), "one\n");
    let r = ok(&sc, "/read", json!({"path": abs_s}));
    assert_eq!(r["content"], "one\n");
    ok(
        &sc,
        "/edit",
        json!({"path": abs_s, "oldText": "one", "newText": "two"}),
    );
    assert_eq!(std::fs::read_to_string(&abs).unwrap(), "two\n");
    let d = dir(&sc).join("abs").to_string_lossy().into_owned();
    assert_eq!(
        ok(&sc, "/ls", json!({"path": d})),
        json!({"output": "dir/"})
    );
    assert_eq!(
        files(&ok(&sc, "/find", json!({"pattern": "*.txt", "path": d}))),
        ["dir/f.txt"]
    );
    assert_eq!(
        content(&ok(&sc, "/grep", json!({"pattern": "two", "path": d}))),
        "dir/f.txt:1: two"
    );
}
