//! Benchmarks of the file tools and /bash against the programs they replace, in one run:
//!
//! (a) /grep over a ≥100 MB copy of cargo registry sources vs `rg --hidden -n`, the
//!     answers checked against rg's;
//! (b) /find `*.rs` vs `fdfind --glob --hidden --type f`, the lists checked;
//! (c) /read of a small file: p50/p99 over a keep-alive connection and with a new
//!     connection per request;
//! (d) /bash `true` vs spawning `sh -c true` directly.
//!
//! Usage: `bench_tools [--runs N] [--latency-runs N] [--write docs/benchmarks.md]` (see
//! `scripts/bench-tools`). The tree is copied once to `target/bench-tools/ws/tree` (or
//! `$SIDECAR_BENCH_TREE_DIR/ws/tree`) and reused, so later runs measure the same files.
//! With `--write`, the `## File tools and /bash` section of that file is replaced (or
//! appended); the rest of the file is left alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sidecar_tests::{repo, KeepAlive, Options, Sidecar};

const SECTION: &str = "## File tools and /bash";
/// The copied tree is at least this large.
const MIN_TREE_BYTES: u64 = 150 * 1000 * 1000;
/// A limit no result reaches, so nothing stops early because of it.
const NO_LIMIT: u64 = 1_000_000_000;

struct Args {
    runs: usize,
    latency_runs: usize,
    write: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 7,
        latency_runs: 2000,
        write: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name} N"))
        };
        match a.as_str() {
            "--runs" => args.runs = num("--runs"),
            "--latency-runs" => args.latency_runs = num("--latency-runs"),
            "--write" => args.write = Some(PathBuf::from(it.next().expect("--write FILE"))),
            other => panic!(
                "unknown argument {other}; usage: bench_tools [--runs N] [--latency-runs N] [--write FILE]"
            ),
        }
    }
    args
}

// ---------------------------------------------------------------- statistics

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

// ---------------------------------------------------------------- the tree

fn bench_dir() -> PathBuf {
    std::env::var_os("SIDECAR_BENCH_TREE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/bench-tools"))
}

fn dir_bytes(p: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    let Ok(rd) = std::fs::read_dir(p) else {
        return (0, 0);
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let (b, f) = dir_bytes(&e.path());
            bytes += b;
            files += f;
        } else if ft.is_file() {
            bytes += e.metadata().map_or(0, |m| m.len());
            files += 1;
        }
    }
    (bytes, files)
}

/// The registry sources: every `~/.cargo/registry/src/*/<crate>` directory, by name.
fn registry_crates() -> Vec<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let mut crates = Vec::new();
    for index in std::fs::read_dir(home.join("registry/src"))
        .expect("~/.cargo/registry/src (run a cargo build first)")
        .flatten()
    {
        for c in std::fs::read_dir(index.path()).unwrap().flatten() {
            if c.file_type().is_ok_and(|t| t.is_dir()) {
                crates.push(c.path());
            }
        }
    }
    crates.sort_by_key(|p| p.file_name().unwrap().to_os_string());
    crates
}

/// Copies crates (by name) until the tree has `MIN_TREE_BYTES`; reuses a finished copy.
/// Returns the tree, its size and file count, and how many crates it holds (a crate
/// copied twice counts twice).
fn ensure_tree() -> (PathBuf, u64, u64, usize) {
    let base = bench_dir();
    let tree = base.join("ws/tree");
    let stamp = base.join("tree.done");
    if !stamp.exists() {
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&tree).unwrap();
        let mut total = 0;
        let mut names = Vec::new();
        let crates = registry_crates();
        assert!(!crates.is_empty(), "~/.cargo/registry/src holds no crate");
        // A registry smaller than the tree is copied again (`<crate>~2`, ...), so the
        // benchmark runs on any machine that has built the workspace.
        let copies = (1..).flat_map(|pass| crates.iter().map(move |c| (pass, c)));
        for (pass, c) in copies {
            if total >= MIN_TREE_BYTES {
                break;
            }
            let mut name = c.file_name().unwrap().to_string_lossy().into_owned();
            if pass > 1 {
                name = format!("{name}~{pass}");
            }
            let st = Command::new("cp")
                .arg("-a")
                .arg(c)
                .arg(tree.join(&name))
                .status()
                .unwrap();
            assert!(st.success(), "cp -a {}", c.display());
            total += dir_bytes(&tree.join(&name)).0;
            names.push(name);
        }
        std::fs::write(&stamp, names.join("\n")).unwrap();
    }
    // An (empty) git repository, so that rg and fd honour the crates' .gitignore files
    // as the sidecar does (it needs no repository; they do, and fd 8 has no
    // `--no-require-git`).
    if !tree.join(".git").exists() {
        let st = Command::new("git")
            .args(["init", "-q", "."])
            .current_dir(&tree)
            .status()
            .expect("git");
        assert!(st.success(), "git init");
    }
    let crates = std::fs::read_to_string(&stamp).unwrap().lines().count();
    let (bytes, files) = dir_bytes(&tree);
    (tree, bytes, files, crates)
}

// ---------------------------------------------------------------- helpers

fn post(sc: &Sidecar, path: &str, body: &Value) -> (Value, Duration) {
    let started = Instant::now();
    let (status, v) = sc.post(path, body);
    let took = started.elapsed();
    assert_eq!(status, 200, "{path} {body}: {v}");
    assert_eq!(v["ok"], true, "{v}");
    (v, took)
}

fn run(argv: &[&str], cwd: &Path) -> (String, Duration) {
    let started = Instant::now();
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (is it installed?)", argv[0]));
    let took = started.elapsed();
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{argv:?}: {}",
        out.status
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), took)
}

/// Component-wise path order, as the sidecar sorts.
fn path_key(p: &str) -> PathBuf {
    PathBuf::from(p)
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn date() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- grep

struct GrepCase {
    label: &'static str,
    pattern: &'static str,
    literal: bool,
}

struct GrepResult {
    label: String,
    ours: f64,
    rg: f64,
    check: String,
}

/// `(path, line)` of every match line of a /grep answer.
fn our_matches(content: &str) -> Vec<(String, u64)> {
    let mut v = Vec::new();
    if content == "No matches found" {
        return v;
    }
    for line in content.lines() {
        if line.is_empty() {
            break; // the notices follow a blank line
        }
        // "path:N: text": the first ":<digits>: " after the path.
        let bytes = line.as_bytes();
        let mut found = None;
        for (i, &b) in bytes.iter().enumerate() {
            if b != b':' {
                continue;
            }
            let rest = &line[i + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && rest[digits..].starts_with(": ") {
                found = Some((line[..i].to_string(), rest[..digits].parse().unwrap()));
                break;
            }
        }
        v.push(found.unwrap_or_else(|| panic!("not a match line: {line}")));
    }
    v
}

/// `(path, line)` of every match rg printed with `--null -n`, in the sidecar's order.
fn rg_matches(out: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = out
        .lines()
        .map(|l| {
            let (path, rest) = l.split_once('\0').unwrap_or_else(|| panic!("{l}"));
            let n = rest.split_once(':').unwrap().0.parse().unwrap();
            (path.trim_start_matches("./").to_string(), n)
        })
        .collect();
    v.sort_by(|a, b| path_key(&a.0).cmp(&path_key(&b.0)).then(a.1.cmp(&b.1)));
    v
}

fn bench_grep(sc: &Sidecar, tree: &Path, case: &GrepCase, runs: usize) -> GrepResult {
    let body = json!({
        "pattern": case.pattern,
        "path": "tree",
        "literal": case.literal,
        "limit": NO_LIMIT,
    });
    let mut argv = vec!["rg", "--hidden", "-n", "--null"];
    if case.literal {
        argv.push("-F");
    }
    argv.extend(["-e", case.pattern]);
    // Warm the page cache and both programs.
    let (v, _) = post(sc, "/grep", &body);
    let (rg_out, _) = run(&argv, tree);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(ms(post(sc, "/grep", &body).1));
        theirs.push(ms(run(&argv, tree).1));
    }
    let result = &v["result"];
    let content = result["content"].as_str().unwrap();
    let mine = our_matches(content);
    let all = rg_matches(&rg_out);
    let cut = result["details"]["truncation"].is_object();
    assert!(
        result["details"].get("matchLimitReached").is_none(),
        "{}",
        result["details"]
    );
    let check = if cut {
        // The answer is the first 50 KB in path order: the first matches of rg's list.
        assert!(
            mine.len() < all.len() && mine[..] == all[..mine.len()],
            "{}: /grep's lines are not the first of rg's ({} vs {})",
            case.label,
            mine.len(),
            all.len()
        );
        format!(
            "answer cut at 50 KB: its {} matches = rg's first {} of {} (path order)",
            mine.len(),
            mine.len(),
            all.len()
        )
    } else {
        assert_eq!(
            mine, all,
            "{}: /grep and rg found different matches",
            case.label
        );
        format!("same {} matches as rg", all.len())
    };
    GrepResult {
        label: case.label.to_string(),
        ours: median(&ours),
        rg: median(&theirs),
        check,
    }
}

// ---------------------------------------------------------------- find

fn bench_find(sc: &Sidecar, tree: &Path, runs: usize) -> GrepResult {
    let body = json!({"pattern": "*.rs", "path": "tree", "limit": NO_LIMIT});
    let argv = [
        "fdfind", "--glob", "--hidden", "--type", "f", "--color", "never", "*.rs",
    ];
    let (v, _) = post(sc, "/find", &body);
    let (fd_out, _) = run(&argv, tree);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(ms(post(sc, "/find", &body).1));
        theirs.push(ms(run(&argv, tree).1));
    }
    let result = &v["result"];
    let shown: Vec<&str> = result["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let total = if result["truncated"] == true {
        result["truncation"]["totalLines"].as_u64().unwrap() as usize
    } else {
        shown.len()
    };
    let mut fd: Vec<&str> = fd_out.lines().map(|l| l.trim_start_matches("./")).collect();
    fd.sort_by_key(|p| path_key(p));
    assert_eq!(total, fd.len(), "/find and fd found different counts");
    assert_eq!(
        shown[..],
        fd[..shown.len()],
        "/find's list is not fd's sorted list"
    );
    GrepResult {
        label: "/find `*.rs`".into(),
        ours: median(&ours),
        rg: median(&theirs),
        check: format!(
            "same {} files as fd (the answer lists the first {}: 50 KB)",
            fd.len(),
            shown.len()
        ),
    }
}

// ---------------------------------------------------------------- latency

struct Latency {
    p50: f64,
    p99: f64,
}

fn latency(samples: &[f64]) -> Latency {
    Latency {
        p50: percentile(samples, 50.0),
        p99: percentile(samples, 99.0),
    }
}

/// The file /read reads.
const SMALL_FILE: &str = "fn main() {\n    println!(\"hello\");\n}\n";

fn bench_read(sc: &Sidecar, n: usize) -> (Latency, Latency) {
    let small = SMALL_FILE;
    std::fs::write(sc_workspace(sc).join("small.rs"), small).unwrap();
    let body = json!({"path": "small.rs"}).to_string();
    let check = |status: u16, bytes: &[u8]| {
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(v["result"]["content"], small);
    };
    let mut ka = KeepAlive::connect(&sc.socket);
    for _ in 0..200 {
        let (s, b) = ka.post("/read", body.as_bytes());
        check(s, &b);
    }
    let mut keep = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (s, b) = ka.post("/read", body.as_bytes());
        keep.push(t.elapsed().as_secs_f64() * 1e6);
        check(s, &b);
    }
    let mut fresh = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = sc.request(
            "POST",
            "/read",
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        fresh.push(t.elapsed().as_secs_f64() * 1e6);
        check(r.status, &r.body);
    }
    (latency(&keep), latency(&fresh))
}

/// The workspace the sidecar was started on (overridden by WORKSPACE_ROOT).
fn sc_workspace(_sc: &Sidecar) -> PathBuf {
    bench_dir().join("ws")
}

fn bench_bash(sc: &Sidecar, n: usize) -> (Latency, Latency) {
    let body = json!({"sessionId": "bench", "command": "true"});
    for _ in 0..20 {
        sc.bash(&body);
    }
    let (mut ours, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let lines = sc.bash(&body);
        ours.push(ms(t.elapsed()));
        assert_eq!(lines.last().unwrap()["exitCode"], 0, "{lines:?}");
        let t = Instant::now();
        let st = Command::new("sh")
            .args(["-c", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        direct.push(ms(t.elapsed()));
        assert!(st.status.success());
    }
    (latency(&ours), latency(&direct))
}

// ---------------------------------------------------------------- main

fn main() {
    let args = parse_args();
    let load_before = loadavg();
    eprintln!("preparing the tree under {} ...", bench_dir().display());
    let (tree, bytes, files, crates) = ensure_tree();
    eprintln!(
        "tree: {crates} crates, {files} files, {:.0} MB",
        bytes as f64 / 1e6
    );
    let sc = Sidecar::start_with(Options {
        env: vec![(
            "WORKSPACE_ROOT".into(),
            bench_dir().join("ws").to_string_lossy().into_owned(),
        )],
        ..Default::default()
    });

    let cases = [
        GrepCase {
            label: "/grep `fn\\s+new\\(`",
            pattern: r"fn\s+new\(",
            literal: false,
        },
        GrepCase {
            label: "/grep `impl\\s+Drop\\s+for`",
            pattern: r"impl\s+Drop\s+for",
            literal: false,
        },
        GrepCase {
            label: "/grep literal `impl Drop for`",
            pattern: "impl Drop for",
            literal: true,
        },
        GrepCase {
            label: "/grep literal `zzqq_no_such_text` (no match: a pure scan)",
            pattern: "zzqq_no_such_text",
            literal: true,
        },
    ];
    let mut rows = Vec::new();
    for case in &cases {
        eprintln!("{} ...", case.label);
        let r = bench_grep(&sc, &tree, case, args.runs);
        eprintln!(
            "  sidecar {:.1} ms, rg {:.1} ms, ratio {:.2}; {}",
            r.ours,
            r.rg,
            r.ours / r.rg,
            r.check
        );
        rows.push(r);
    }
    eprintln!("/find *.rs ...");
    let f = bench_find(&sc, &tree, args.runs);
    eprintln!(
        "  sidecar {:.1} ms, fd {:.1} ms, ratio {:.2}; {}",
        f.ours,
        f.rg,
        f.ours / f.rg,
        f.check
    );
    rows.push(f);

    eprintln!("/read x{} ...", args.latency_runs);
    let (keep, fresh) = bench_read(&sc, args.latency_runs);
    eprintln!(
        "  keep-alive p50 {:.0} µs p99 {:.0} µs; new connection p50 {:.0} µs p99 {:.0} µs",
        keep.p50, keep.p99, fresh.p50, fresh.p99
    );
    let bash_runs = (args.latency_runs / 4).max(50);
    eprintln!("/bash true x{bash_runs} ...");
    let (bash, direct) = bench_bash(&sc, bash_runs);
    eprintln!(
        "  /bash p50 {:.2} ms p99 {:.2} ms; sh -c true p50 {:.2} ms p99 {:.2} ms",
        bash.p50, bash.p99, direct.p50, direct.p99
    );
    let load_after = loadavg();

    let mut table = String::new();
    for r in &rows {
        let reference = if r.label.starts_with("/find") {
            "fd"
        } else {
            "rg"
        };
        table.push_str(&format!(
            "| {} | {:.0} ms | {reference} {:.0} ms | {:.2}× | {} |\n",
            r.label,
            r.ours,
            r.rg,
            r.ours / r.rg,
            r.check
        ));
    }
    let section = format!(
        "{SECTION}\n\n\
Measured {date} on {machine}, release build, by `scripts/bench-tools` \
(`tests/src/bin/bench_tools.rs`; `--runs {runs}`). Load average {load_before} before, \
{load_after} after (other builds may run on this machine: figures are medians of \
interleaved runs).\n\n\
Tree: the first {crates} crates (by name) of `~/.cargo/registry/src` (a registry under \
{min_mb} MB is taken again, as `<crate>~2` ...), copied once to \
`target/bench-tools/ws/tree`: {files} files, {mb:.0} MB. Every request asks for `limit` \
{NO_LIMIT}, so no match limit stops it early; the page cache is warm. References, with the sidecar's \
semantics: `rg --hidden -n --null [-F] -e PATTERN` and \
`fdfind --glob --hidden --type f '*.rs'`, each started in the tree (made an empty git \
repository, so that they honour `.gitignore` files as the sidecar does without one), \
output to a pipe. Times are wall times from the client: the HTTP request over the Unix \
socket for the sidecar, process spawn to exit for rg/fd.\n\n\
| workload | sidecar | reference | ratio | answer checked |\n\
|---|---|---|---|---|\n\
{table}\n\
{cut_note}\n\n\
| latency | p50 | p99 |\n\
|---|---|---|\n\
| /read of a {small}-byte file, one keep-alive connection ({n} requests) | {kp50:.0} µs | {kp99:.0} µs |\n\
| /read of the same file, a new connection per request ({n} requests) | {fp50:.0} µs | {fp99:.0} µs |\n\
| /bash `true` ({bn} requests, a new connection each) | {bp50:.2} ms | {bp99:.2} ms |\n\
| `sh -c true` spawned directly ({bn} runs) | {dp50:.2} ms | {dp99:.2} ms |\n\n\
/bash runs the command in its sandbox (own cgroup, uid drop, network namespace, \
rlimits, scratch directory), which is what its overhead over a bare spawn pays for.\n\n\
Reproduce: `scripts/bench-tools` (prints the figures; `--write docs/benchmarks.md` \
rewrites this section).\n",
        cut_note = cut_note(&rows),
        date = date(),
        machine = machine(),
        runs = args.runs,
        mb = bytes as f64 / 1e6,
        min_mb = MIN_TREE_BYTES / 1_000_000,
        n = args.latency_runs,
        small = SMALL_FILE.len(),
        kp50 = keep.p50,
        kp99 = keep.p99,
        fp50 = fresh.p50,
        fp99 = fresh.p99,
        bn = bash_runs,
        bp50 = bash.p50,
        bp99 = bash.p99,
        dp50 = direct.p50,
        dp99 = direct.p99,
    );
    println!("{section}");
    if let Some(path) = args.write {
        write_section(&path, &section);
        eprintln!("wrote the {SECTION} section of {}", path.display());
    }
}

/// What the table's "cut" rows mean.
fn cut_note(rows: &[GrepResult]) -> String {
    let cut: Vec<&str> = rows
        .iter()
        .filter(|r| r.check.starts_with("answer cut"))
        .map(|r| r.label.as_str())
        .collect();
    let mut note = String::from(
        "A /grep answer is at most 50 KB (the coding sidecar's limit, whatever `limit` says): \
when the matches pass it, the answer is the first 50 KB in path order, and files that \
sort after those are not searched at all, while rg searches everything. ",
    );
    if cut.is_empty() {
        note.push_str("No answer here was cut: every /grep row searched the whole tree.");
    } else {
        note.push_str(&format!(
            "Cut here: {}; so that row measures the answer an agent gets, not a whole-tree \
search. The other /grep rows search the whole tree, as rg does.",
            cut.join(", ")
        ));
    }
    note.push_str(" /find always walks the whole tree (its answer, too, lists 50 KB).");
    note
}

/// Replaces this benchmark's section of `path` (up to the next `## ` heading), or
/// appends it; creates the file with a title if it is missing.
fn write_section(path: &Path, section: &str) {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
    let mut out = String::new();
    let mut skipping = false;
    let mut replaced = false;
    for line in old.split_inclusive('\n') {
        if line.trim_end() == SECTION {
            skipping = true;
            replaced = true;
            out.push_str(section);
            if !section.ends_with("\n\n") {
                out.push('\n');
            }
            continue;
        }
        if skipping && line.starts_with("## ") {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
        }
    }
    if !replaced {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(section);
    }
    let out = out.trim_end().to_string() + "\n";
    std::fs::write(path, out).unwrap();
}
