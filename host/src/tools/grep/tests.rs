use super::*;
use crate::tools::testutil::{session, write};
use crate::workspace::ToolErrorKind;

fn req(pattern: &str) -> GrepRequest {
    GrepRequest {
        pattern: Some(pattern.into()),
        ..Default::default()
    }
}

fn content(v: &Value) -> &str {
    v["content"].as_str().unwrap()
}

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("line {i}\n")).collect()
}

#[test]
fn matches_in_path_order() {
    let (_t, s) = session();
    write(&s, "b.txt", "x\nfoo one\n");
    write(&s, "a/z.txt", "foo two\nbar\nfoo three\n");
    write(&s, "a.txt", "nothing\n");
    write(&s, ".hidden/h.txt", "foo hidden\n");
    let v = run(&s, req("fo+")).unwrap();
    assert_eq!(
        v,
        json!({"content": ".hidden/h.txt:1: foo hidden\na/z.txt:1: foo two\na/z.txt:3: foo three\nb.txt:2: foo one"})
    );
    // Relative to the searched directory.
    let v = run(
        &s,
        GrepRequest {
            path: Some("a".into()),
            ..req("foo")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "z.txt:1: foo two\nz.txt:3: foo three");
    // A file: relative to the session directory.
    let v = run(
        &s,
        GrepRequest {
            path: Some("./a/z.txt".into()),
            ..req("three")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "a/z.txt:3: foo three");
    assert_eq!(
        run(&s, req("absent")).unwrap(),
        json!({"content": "No matches found"})
    );
}

#[test]
fn context_groups_merge() {
    let (_t, s) = session();
    let mut body = numbered(20);
    body = body
        .replace("line 5\n", "line 5 hit\n")
        .replace("line 7\n", "line 7 hit\n");
    body = body.replace("line 15\n", "line 15 hit\n");
    write(&s, "f.txt", &body);
    let v = run(
        &s,
        GrepRequest {
            context: Some(2),
            ..req("hit")
        },
    )
    .unwrap();
    assert_eq!(
        content(&v),
        "f.txt-3- line 3\nf.txt-4- line 4\nf.txt:5: line 5 hit\nf.txt-6- line 6\nf.txt:7: line 7 hit\n\
         f.txt-8- line 8\nf.txt-9- line 9\n--\nf.txt-13- line 13\nf.txt-14- line 14\n\
         f.txt:15: line 15 hit\nf.txt-16- line 16\nf.txt-17- line 17"
    );
    // Adjacent groups (7+2 = 9, 12-2 = 10) join without a separator.
    let body = numbered(12)
        .replace("line 7\n", "line 7 hit\n")
        .replace("line 12\n", "line 12 hit\n");
    write(&s, "g.txt", &body);
    let v = run(
        &s,
        GrepRequest {
            context: Some(2),
            path: Some("g.txt".into()),
            ..req("hit")
        },
    )
    .unwrap();
    let c = content(&v);
    assert!(!c.contains("--"), "{c}");
    assert_eq!(c.lines().count(), 8, "{c}");
    // Context is clipped at the file's edges.
    write(&s, "h.txt", "hit\nb\n");
    let v = run(
        &s,
        GrepRequest {
            context: Some(5),
            path: Some("h.txt".into()),
            ..req("hit")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "h.txt:1: hit\nh.txt-2- b");
}

#[test]
fn separators_between_files_only_with_context() {
    let (_t, s) = session();
    write(&s, "a", "x\nhit\n");
    write(&s, "b", "hit\ny\n");
    let v = run(
        &s,
        GrepRequest {
            context: Some(1),
            ..req("hit")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "a-1- x\na:2: hit\n--\nb:1: hit\nb-2- y");
    let v = run(&s, req("hit")).unwrap();
    assert_eq!(content(&v), "a:2: hit\nb:1: hit");
}

#[test]
fn match_limit() {
    let (_t, s) = session();
    write(&s, "a", "m1\nm2\n");
    write(&s, "b", "m3\nafter\nm4\n");
    write(&s, "c", "m5\n");
    let v = run(
        &s,
        GrepRequest {
            limit: Some(3),
            ..req("^m")
        },
    )
    .unwrap();
    assert_eq!(
        content(&v),
        "a:1: m1\na:2: m2\nb:1: m3\n\n[3 matches limit reached. Use limit=6 for more, or refine pattern]"
    );
    assert_eq!(v["details"], json!({"matchLimitReached": 3}));
    // Trailing context of the last shown match, and no more.
    let v = run(
        &s,
        GrepRequest {
            limit: Some(3),
            context: Some(1),
            ..req("^m")
        },
    )
    .unwrap();
    assert!(
        content(&v).starts_with("a:1: m1\na:2: m2\n--\nb:1: m3\nb-2- after\n\n[3 matches"),
        "{}",
        content(&v)
    );
    // Exactly `limit` matches: nothing to report.
    let v = run(
        &s,
        GrepRequest {
            limit: Some(5),
            ..req("^m")
        },
    )
    .unwrap();
    assert!(v.get("details").is_none());
    assert_eq!(content(&v).lines().count(), 5);
    // Limit reached inside one file.
    let v = run(
        &s,
        GrepRequest {
            limit: Some(1),
            path: Some("b".into()),
            ..req("^m")
        },
    )
    .unwrap();
    assert_eq!(v["details"]["matchLimitReached"], 1);
}

#[test]
fn limit_is_deterministic_across_many_files() {
    let (_t, s) = session();
    for i in 0..300 {
        write(&s, &format!("d{}/f{i:03}.txt", i % 7), "needle\nneedle\n");
    }
    let first = run(
        &s,
        GrepRequest {
            limit: Some(51),
            ..req("needle")
        },
    )
    .unwrap();
    let c = content(&first);
    assert!(c.starts_with("d0/f000.txt:1: needle\nd0/f000.txt:2: needle\nd0/f007.txt:1: needle"));
    assert_eq!(c.lines().filter(|l| l.contains(": needle")).count(), 51);
    for _ in 0..5 {
        assert_eq!(
            run(
                &s,
                GrepRequest {
                    limit: Some(51),
                    ..req("needle")
                }
            )
            .unwrap(),
            first
        );
    }
}

#[test]
fn options() {
    let (_t, s) = session();
    write(&s, "f", "Hello\nhello\na.b(c\naxb(c\n");
    assert_eq!(content(&run(&s, req("hello")).unwrap()), "f:2: hello");
    let v = run(
        &s,
        GrepRequest {
            ignore_case: Some(true),
            ..req("HELLO")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "f:1: Hello\nf:2: hello");
    let v = run(
        &s,
        GrepRequest {
            literal: Some(true),
            ..req("a.b(")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "f:3: a.b(c");
    let e = run(&s, req("a.b(")).unwrap_err();
    assert!(
        e.message.starts_with("Invalid regex pattern"),
        "{}",
        e.message
    );
    // The message quotes the pattern as given, not as the matcher wrapped it.
    assert!(e.message.contains("\n    a.b(\n"), "{}", e.message);
    assert!(!e.message.contains("(?:"), "{}", e.message);
    // Trimmed, as the original did: " b" searches for "b".
    write(&s, "sp", "a b\nab\nxyz\n");
    let v = run(
        &s,
        GrepRequest {
            path: Some("sp".into()),
            ..req(" b\n")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "sp:1: a b\nsp:2: ab");
    for blank in ["", " \t\n", "\u{feff}"] {
        assert_eq!(
            run(&s, req(blank)).unwrap_err().message,
            "Missing or invalid pattern",
            "{blank:?}"
        );
    }
    // CRLF files show without the CR.
    write(&s, "crlf", "one\r\ntwo\r\n");
    let v = run(
        &s,
        GrepRequest {
            path: Some("crlf".into()),
            ..req("one$")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "crlf:1: one");
    // `^` and `$` at line ends with LF too, also before the last line.
    write(&s, "lf", "one\ntwo one\none\n");
    let v = run(
        &s,
        GrepRequest {
            path: Some("lf".into()),
            ..req("^one$")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "lf:1: one\nlf:3: one");
    assert_eq!(
        run(&s, GrepRequest::default()).unwrap_err().message,
        "Missing or invalid pattern"
    );
}

#[test]
fn glob_filter() {
    let (_t, s) = session();
    write(&s, "a.rs", "hit\n");
    write(&s, "src/b.rs", "hit\n");
    write(&s, "src/c.txt", "hit\n");
    let g = |glob: &str| {
        content(
            &run(
                &s,
                GrepRequest {
                    glob: Some(glob.into()),
                    ..req("hit")
                },
            )
            .unwrap(),
        )
        .to_string()
    };
    assert_eq!(g("*.rs"), "a.rs:1: hit\nsrc/b.rs:1: hit");
    assert_eq!(g("src/*.rs"), "src/b.rs:1: hit");
    assert_eq!(g("!*.rs"), "src/c.txt:1: hit");
    assert_eq!(g("  "), "a.rs:1: hit\nsrc/b.rs:1: hit\nsrc/c.txt:1: hit");
    assert!(run(
        &s,
        GrepRequest {
            glob: Some("a[".into()),
            ..req("hit")
        }
    )
    .unwrap_err()
    .message
    .contains("Invalid glob"));
}

#[test]
fn ignores_binary_git_and_symlinks() {
    let (t, s) = session();
    write(&s, ".gitignore", "build/\n");
    write(&s, "build/out.txt", "hit\n");
    write(&s, ".git/HEAD", "hit\n");
    write(&s, "bin.dat", b"hit\n\0\x01\x02");
    write(&s, "ok.txt", "hit\n");
    std::fs::write(t.path().join("secret"), "hit secret\n").unwrap();
    std::os::unix::fs::symlink(t.path().join("secret"), s.dir().join("link")).unwrap();
    std::os::unix::fs::symlink(t.path(), s.dir().join("linkdir")).unwrap();
    let v = run(&s, req("hit")).unwrap();
    assert_eq!(content(&v), "ok.txt:1: hit");
    // The ignore files above the searched directory apply.
    write(&s, "sub/build/x.txt", "hit\n");
    write(&s, "sub/y.txt", "hit\n");
    let v = run(
        &s,
        GrepRequest {
            path: Some("sub".into()),
            ..req("hit")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "y.txt:1: hit");
    // Binary file named explicitly: skipped too.
    let v = run(
        &s,
        GrepRequest {
            path: Some("bin.dat".into()),
            ..req("hit")
        },
    )
    .unwrap();
    assert_eq!(content(&v), "No matches found");
    for bad in ["link", "linkdir", "..", "/etc"] {
        let e = run(
            &s,
            GrepRequest {
                path: Some(bad.into()),
                ..req("hit")
            },
        )
        .unwrap_err();
        assert_eq!(e.status(), 400, "{bad}");
        assert!(
            matches!(e.kind, ToolErrorKind::Forbidden),
            "{bad}: {}",
            e.message
        );
    }
    assert_eq!(
        run(
            &s,
            GrepRequest {
                path: Some("none".into()),
                ..req("hit")
            }
        )
        .unwrap_err()
        .kind,
        ToolErrorKind::NotFound
    );
}

#[test]
fn long_lines_and_byte_cap() {
    let (_t, s) = session();
    write(&s, "long", format!("hit {}\n", "é".repeat(600)));
    let v = run(&s, req("hit")).unwrap();
    let c = content(&v);
    let first = c.lines().next().unwrap();
    assert_eq!(
        first.chars().count(),
        "long:1: ".len() + 500 + "... [truncated]".len()
    );
    assert!(first.ends_with("... [truncated]"));
    assert!(c.ends_with("\n\n[Some lines truncated to 500 chars. Use read tool to see full lines]"));
    assert_eq!(v["details"], json!({"linesTruncated": true}));

    let line = format!("hit {}\n", "x".repeat(200));
    write(&s, "many", line.repeat(1000));
    let v = run(
        &s,
        GrepRequest {
            path: Some("many".into()),
            limit: Some(10_000),
            ..req("hit")
        },
    )
    .unwrap();
    let c = content(&v);
    assert!(
        c.ends_with("\n\n[50KB limit reached]"),
        "{}",
        &c[c.len() - 100..]
    );
    let t = &v["details"]["truncation"];
    assert_eq!(t["truncatedBy"], "bytes");
    assert_eq!(t["maxBytes"], 51200);
    assert_eq!(t["maxLines"], 9_007_199_254_740_991u64);
    assert!(t["outputBytes"].as_u64().unwrap() <= 51200);
    assert!(v["details"].get("matchLimitReached").is_none());
    // Default limit of 100 with both notices.
    let v = run(
        &s,
        GrepRequest {
            path: Some("many".into()),
            ..req("hit")
        },
    )
    .unwrap();
    assert!(content(&v)
        .ends_with("\n\n[100 matches limit reached. Use limit=200 for more, or refine pattern]"));
    assert_eq!(content(&v).lines().count(), 102);
}

#[test]
fn many_files_past_the_cap_are_skipped_but_output_is_right() {
    let (_t, s) = session();
    let line = format!("hit {}\n", "y".repeat(300));
    for i in 0..400 {
        write(&s, &format!("f{i:03}"), line.repeat(3));
    }
    let v = run(
        &s,
        GrepRequest {
            limit: Some(100_000),
            ..req("hit")
        },
    )
    .unwrap();
    let c = content(&v);
    assert!(c.starts_with("f000:1: hit"));
    assert!(c.ends_with("[50KB limit reached]"));
    // Every shown file is a prefix of the sorted list.
    let shown: Vec<&str> = c
        .lines()
        .filter_map(|l| l.split(':').next())
        .filter(|p| p.starts_with('f'))
        .collect();
    let mut sorted = shown.clone();
    sorted.sort();
    assert_eq!(shown, sorted);
    assert_eq!(shown[0], "f000");
}
