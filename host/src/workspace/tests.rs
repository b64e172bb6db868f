use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::*;

fn ws() -> (tempfile::TempDir, Workspace) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = Workspace::new(tmp.path().join("root"), false);
    (tmp, ws)
}

#[test]
fn session_dirs() {
    let (tmp, ws) = ws();
    let s = ws.session(Some("abc")).unwrap();
    assert_eq!(s.id(), Some("abc"));
    assert_eq!(s.dir(), tmp.path().join("root/abc"));
    assert!(tmp.path().join("root/abc").is_dir());
    // Second use reuses it.
    fs::write(tmp.path().join("root/abc/f"), "x").unwrap();
    let s = ws.session(Some("abc")).unwrap();
    assert_eq!(fs::read_to_string(s.dir().join("f")).unwrap(), "x");

    let root = ws.session(None).unwrap();
    assert_eq!(root.id(), None);
    assert_eq!(root.dir(), tmp.path().join("root"));

    let shared = Workspace::new(tmp.path().join("root"), true);
    let s = shared.session(Some("zzz")).unwrap();
    assert_eq!(s.dir(), tmp.path().join("root"));
    assert!(!tmp.path().join("root/zzz").exists());
}

#[test]
fn invalid_session_ids() {
    let (tmp, ws) = ws();
    for bad in ["", "a.b", "../x", "a/b", "x y", &"a".repeat(129)] {
        let e = ws.session(Some(bad)).unwrap_err();
        assert_eq!(e.status(), 400, "{bad}");
        assert!(e.message.contains("Invalid sessionId"));
    }
    // Shared workspaces validate too.
    let shared = Workspace::new(tmp.path().join("root"), true);
    assert!(shared.session(Some("a.b")).is_err());
    // a.b and a_b never collide: one is refused.
    assert!(ws.session(Some("a_b")).is_ok());
}

#[test]
fn symlinked_session_dir_is_refused() {
    let (tmp, ws) = ws();
    fs::create_dir_all(tmp.path().join("root")).unwrap();
    fs::create_dir(tmp.path().join("outside")).unwrap();
    symlink(tmp.path().join("outside"), tmp.path().join("root/evil")).unwrap();
    let e = ws.session(Some("evil")).unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::Forbidden);
}

#[test]
fn open_read_confinement() {
    let (tmp, ws) = ws();
    let s = ws.session(Some("s")).unwrap();
    let d = s.dir().to_path_buf();
    fs::create_dir(d.join("sub")).unwrap();
    fs::write(d.join("sub/a.txt"), "hello").unwrap();
    fs::write(tmp.path().join("secret"), "secret").unwrap();
    fs::create_dir(tmp.path().join("outdir")).unwrap();
    fs::write(tmp.path().join("outdir/x"), "outside").unwrap();

    let mut buf = String::new();
    s.open_read("sub/a.txt")
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert_eq!(buf, "hello");
    // Absolute inside the session is fine.
    let abs = d.join("sub/a.txt");
    assert!(s.open_read(abs.to_str().unwrap()).is_ok());

    // `..` escapes.
    let e = s.open_read("../../secret").unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::Forbidden);
    assert!(e.message.contains("escapes"), "{}", e.message);
    // Absolute elsewhere.
    let e = s.open_read("/etc/passwd").unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::Forbidden);
    assert!(e.message.contains("outside the workspace"), "{}", e.message);
    // A sibling session by absolute path.
    let other = tmp.path().join("root/other/x");
    assert!(s.open_read(other.to_str().unwrap()).is_err());

    // A symlink planted by a command, pointing at /etc/passwd.
    symlink("/etc/passwd", d.join("passwd")).unwrap();
    let e = s.open_read("passwd").unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::Forbidden);
    assert!(e.message.contains("symbolic link"), "{}", e.message);
    // A relative symlink that stays inside is refused as well (no symlinks at all).
    symlink("sub/a.txt", d.join("inner")).unwrap();
    assert_eq!(
        s.open_read("inner").unwrap_err().kind,
        ToolErrorKind::Forbidden
    );
    // A symlinked parent directory.
    symlink(tmp.path().join("outdir"), d.join("linkdir")).unwrap();
    let e = s.open_read("linkdir/x").unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::Forbidden);
    assert!(
        e.message.contains("goes through a symbolic link"),
        "{}",
        e.message
    );
    assert!(e.message.contains("(linkdir)"), "{}", e.message);

    // Missing, directory, FIFO.
    let e = s.open_read("nope.txt").unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::NotFound);
    assert!(e.message.contains("nope.txt"));
    assert!(s
        .open_read("sub")
        .unwrap_err()
        .message
        .contains("Is a directory"));
    let fifo = std::ffi::CString::new(d.join("fifo").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    assert!(s
        .open_read("fifo")
        .unwrap_err()
        .message
        .contains("Not a regular file"));
    // A file used as a directory.
    assert!(s
        .open_read("sub/a.txt/x")
        .unwrap_err()
        .message
        .contains("Not a directory"));
}

#[test]
fn atomic_create() {
    let (tmp, ws) = ws();
    let s = ws.session(None).unwrap();
    let d = s.dir().to_path_buf();
    let rel = s.create_atomic("a/b/c.txt", "hé\n".as_bytes()).unwrap();
    assert_eq!(rel, Path::new("a/b/c.txt"));
    assert_eq!(fs::read_to_string(d.join("a/b/c.txt")).unwrap(), "hé\n");

    // Overwrite keeps the mode.
    fs::set_permissions(d.join("a/b/c.txt"), fs::Permissions::from_mode(0o750)).unwrap();
    s.create_atomic("a/b/c.txt", b"new").unwrap();
    assert_eq!(fs::read_to_string(d.join("a/b/c.txt")).unwrap(), "new");
    let mode = fs::metadata(d.join("a/b/c.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    // No temporary file left behind.
    let names: Vec<_> = fs::read_dir(d.join("a/b")).unwrap().collect();
    assert_eq!(names.len(), 1);

    // Target is a symlink: refused, the target is untouched.
    fs::write(tmp.path().join("victim"), "keep").unwrap();
    symlink(tmp.path().join("victim"), d.join("link")).unwrap();
    let e = s.create_atomic("link", b"pwned").unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::Forbidden);
    assert_eq!(
        fs::read_to_string(tmp.path().join("victim")).unwrap(),
        "keep"
    );
    assert!(fs::symlink_metadata(d.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());

    // Parent is a symlinked directory: refused, nothing created outside.
    fs::create_dir(tmp.path().join("outdir")).unwrap();
    symlink(tmp.path().join("outdir"), d.join("ld")).unwrap();
    let e = s.create_atomic("ld/x/y.txt", b"pwned").unwrap_err();
    assert_eq!(e.kind, ToolErrorKind::Forbidden);
    assert!(e.message.contains("ld"), "{}", e.message);
    assert_eq!(fs::read_dir(tmp.path().join("outdir")).unwrap().count(), 0);

    // Escapes and absolute paths elsewhere.
    assert!(s.create_atomic("../evil", b"x").is_err());
    assert!(!tmp.path().join("evil").exists());
    let outside = tmp.path().join("evil2");
    assert!(s.create_atomic(outside.to_str().unwrap(), b"x").is_err());
    assert!(!outside.exists());

    // Directory targets.
    assert!(s
        .create_atomic("a/b", b"x")
        .unwrap_err()
        .message
        .contains("Is a directory"));
    assert!(s
        .create_atomic(".", b"x")
        .unwrap_err()
        .message
        .contains("Is a directory"));
    // A file in the way of a parent.
    assert!(s
        .create_atomic("a/b/c.txt/d", b"x")
        .unwrap_err()
        .message
        .contains("Not a directory: a/b/c.txt"));
}

#[test]
fn readers_never_see_half_a_file() {
    let (_tmp, ws) = ws();
    let s = std::sync::Arc::new(ws.session(Some("w")).unwrap());
    let a = vec![b'a'; 1 << 20];
    let b = vec![b'b'; 1 << 20];
    s.create_atomic("f", &a).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let s = s.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                s.create_atomic("f", if i % 2 == 0 { &b } else { &a })
                    .unwrap();
                i += 1;
            }
        })
    };
    for _ in 0..200 {
        let mut buf = Vec::new();
        s.open_read("f").unwrap().read_to_end(&mut buf).unwrap();
        assert_eq!(buf.len(), 1 << 20);
        assert!(buf.iter().all(|&c| c == buf[0]));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn mkdir_resolve_dir_metadata_remove() {
    let (tmp, ws) = ws();
    let s = ws.session(Some("m")).unwrap();
    let d = s.dir().to_path_buf();
    s.mkdir_all("x/y/z").unwrap();
    assert!(d.join("x/y/z").is_dir());
    s.mkdir_all("x/y/z").unwrap();
    s.mkdir_all("").unwrap();
    assert!(s.resolve_dir("x/y").is_ok());
    fs::write(d.join("x/f"), "1").unwrap();
    assert!(s
        .resolve_dir("x/f")
        .unwrap_err()
        .message
        .contains("Not a directory"));
    assert!(s.mkdir_all("x/f/g").is_err());
    symlink(tmp.path(), d.join("up")).unwrap();
    assert_eq!(
        s.mkdir_all("up/new").unwrap_err().kind,
        ToolErrorKind::Forbidden
    );
    assert!(!tmp.path().join("new").exists());
    assert_eq!(
        s.resolve_dir("up").unwrap_err().kind,
        ToolErrorKind::Forbidden
    );

    // metadata: lstat semantics for the last component.
    assert!(s.metadata("up").unwrap().file_type().is_symlink());
    assert!(s.metadata("x/f").unwrap().is_file());
    assert!(s.metadata("up/root").is_err());

    // remove_file removes the link, not its target.
    s.remove_file("up").unwrap();
    assert!(tmp.path().exists());
    assert!(!d.join("up").exists());
    s.remove_file("x/f").unwrap();
    assert!(s.remove_file("x").is_err());
    assert_eq!(
        s.remove_file("x/none").unwrap_err().kind,
        ToolErrorKind::NotFound
    );
}

#[test]
fn walk_roots() {
    let (_tmp, ws) = ws();
    let s = ws.session(Some("w")).unwrap();
    let d = s.dir().to_path_buf();
    fs::create_dir(d.join("dir")).unwrap();
    fs::write(d.join("dir/f"), "1").unwrap();
    symlink("/etc", d.join("etc")).unwrap();
    let r = s.walk_root("dir").unwrap();
    assert!(r.is_dir());
    assert_eq!(r.rel(), Path::new("dir"));
    assert!(r.path().join("f").is_file());
    assert_eq!(r.relative(&r.path().join("f")), Some(Path::new("f")));
    let mut buf = String::new();
    r.open_file(Path::new("f"))
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert_eq!(buf, "1");
    let r = s.walk_root("dir/f").unwrap();
    assert!(!r.is_dir());
    let mut buf = String::new();
    r.file().unwrap().read_to_string(&mut buf).unwrap();
    assert_eq!(buf, "1");
    assert_eq!(
        s.walk_root("etc").unwrap_err().kind,
        ToolErrorKind::Forbidden
    );
    assert!(s.walk_root("").unwrap().is_dir());
}
