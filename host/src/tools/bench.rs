//! Timing harness for find and grep over a real tree (ignored by default).
//!
//! `SIDECAR_BENCH_ROOT=/path/to/workspace-root SIDECAR_BENCH_SESSION=name \
//!  cargo test --release -p sidecar --lib -- tools::bench --ignored --nocapture`
//! and compare with `rg -n --hidden PATTERN DIR` and `fdfind --glob --hidden GLOB DIR`.

use std::time::Instant;

use super::{find, grep};
use crate::workspace::Workspace;

fn ms(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1000.0
}

/// Alternates ours and the reference command, best of `runs` each.
fn versus(label: &str, runs: usize, ours: &mut dyn FnMut(), cmd: &[&str], dir: &std::path::Path) {
    let mut reference = || {
        let out = std::process::Command::new(cmd[0])
            .args(&cmd[1..])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.code().is_some());
    };
    let (mut a, mut b) = (f64::MAX, f64::MAX);
    for _ in 0..runs {
        a = a.min(ms(ours));
        b = b.min(ms(&mut reference));
    }
    println!(
        "{label}: ours {a:.1} ms, {} {b:.1} ms, ratio {:.2}",
        cmd[0],
        a / b
    );
}

#[test]
#[ignore]
fn find_and_grep_timings() {
    let Ok(root) = std::env::var("SIDECAR_BENCH_ROOT") else {
        return;
    };
    let id = std::env::var("SIDECAR_BENCH_SESSION").ok();
    let ws = Workspace::new(root, false);
    let s = ws.session(id.as_deref()).unwrap();
    let dir = s.dir().to_path_buf();
    let runs = 11;
    let find_req = || find::FindRequest {
        pattern: Some("*.rs".into()),
        limit: Some(1_000_000),
        ..Default::default()
    };
    let v = find::run(&s, find_req()).unwrap();
    println!("find files: {}", v["files"].as_array().unwrap().len());
    if let Ok(out) = std::env::var("SIDECAR_BENCH_DUMP") {
        let list: Vec<&str> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        std::fs::write(out, list.join("\n")).unwrap();
    }
    versus(
        "find *.rs",
        runs,
        &mut || {
            find::run(&s, find_req()).unwrap();
        },
        &["fdfind", "--glob", "--hidden", "*.rs"],
        &dir,
    );
    for (pattern, limit) in [
        (r"fn\s+new\(", 100),
        (r"fn\s+new\(", 1_000_000_000),
        ("unsafe impl", 1_000_000_000),
        ("zzqqxx_nothing", 100),
        (r"\w+_nothing_\d", 100),
        (r"[a-z]+_nothing_\d", 100),
        (r"(?-u)\w+_nothing_\d", 100),
    ] {
        versus(
            &format!("grep {pattern} limit={limit}"),
            runs,
            &mut || {
                grep::run(
                    &s,
                    grep::GrepRequest {
                        pattern: Some(pattern.into()),
                        limit: Some(limit),
                        ..Default::default()
                    },
                )
                .unwrap();
            },
            &["rg", "-n", "--hidden", pattern],
            &dir,
        );
    }
}
