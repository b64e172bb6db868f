//! Validation of what clients send: session ids and path strings.
//!
//! These checks are lexical only; the kernel (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`) enforces confinement when the path is used.

use std::path::{Component, Path, PathBuf};

use super::ToolError;

/// The longest accepted session id.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// Checks a session id: 1 to 128 characters of `A-Z a-z 0-9 _ -`. Nothing is
/// rewritten (the original mapped odd characters to `_`, so `a.b` and `a_b` collided).
pub fn validate_session_id(id: &str) -> Result<(), ToolError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_SESSION_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ToolError::bad_request(format!(
            "Invalid sessionId: it must be 1 to {MAX_SESSION_ID_LEN} characters from A-Z, a-z, 0-9, '_' and '-'"
        )))
    }
}

/// Lexically normalizes `path`: drops `.` and empty components, resolves `..`
/// against what precedes it. Returns `None` if a `..` climbs above the start.
fn normalize_components(path: &Path) -> Option<(bool, PathBuf)> {
    let mut out = PathBuf::new();
    let mut absolute = false;
    for c in path.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::Prefix(_) => return None,
            Component::CurDir => {}
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                if !out.pop() {
                    if absolute {
                        // `/..` is `/` on Unix.
                        continue;
                    }
                    return None;
                }
            }
        }
    }
    Some((absolute, out))
}

/// Validates a client path and returns it relative to the session directory `base`
/// (absolute): the empty path means `base` itself.
///
/// Accepted: relative paths that stay inside (`a/../b` is `b`), and absolute paths
/// that lie inside `base` (or inside `canonical_base`, the same directory with
/// symlinks resolved, when given). Refused: NUL bytes, `..` climbing out, absolute
/// paths elsewhere. Symlinks are not judged here: the open refuses them.
pub fn normalize_path(
    base: &Path,
    canonical_base: Option<&Path>,
    input: &str,
) -> Result<PathBuf, ToolError> {
    if input.contains('\0') {
        return Err(ToolError::bad_request(
            "Invalid path: it contains a NUL byte",
        ));
    }
    let Some((absolute, norm)) = normalize_components(Path::new(input)) else {
        return Err(ToolError::forbidden(format!(
            "Path escapes the workspace: {input}"
        )));
    };
    if !absolute {
        return Ok(norm);
    }
    let abs = Path::new("/").join(&norm);
    let bases = std::iter::once(base).chain(canonical_base);
    for b in bases {
        if let Some((_, b)) = normalize_components(b) {
            let b = Path::new("/").join(b);
            if let Ok(rest) = abs.strip_prefix(&b) {
                return Ok(rest.to_path_buf());
            }
        }
    }
    Err(ToolError::forbidden(format!(
        "Path is outside the workspace: {input} (use a path relative to the session directory, or an absolute path inside {})",
        base.display()
    )))
}

/// Splits a normalized relative path into (parent, file name); `None` for the
/// session directory itself.
pub fn split_parent(rel: &Path) -> Option<(&Path, &Path)> {
    let name = rel.file_name()?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    Some((parent, Path::new(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids() {
        for ok in ["a", "A-b_9", &"x".repeat(128)] {
            assert!(validate_session_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a.b",
            "a/b",
            "..",
            ".",
            "a b",
            "é",
            &"x".repeat(129),
            "a\0",
        ] {
            let e = validate_session_id(bad).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.message.contains("Invalid sessionId"));
        }
    }

    #[test]
    fn relative_paths() {
        let base = Path::new("/ws/s1");
        let n = |p: &str| normalize_path(base, None, p);
        assert_eq!(n("").unwrap(), PathBuf::new());
        assert_eq!(n(".").unwrap(), PathBuf::new());
        assert_eq!(n("./a//b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(n("a/../b").unwrap(), PathBuf::from("b"));
        assert_eq!(n("a/..").unwrap(), PathBuf::new());
        assert_eq!(n("dir\\name").unwrap(), PathBuf::from("dir\\name"));
        for bad in ["..", "../x", "a/../../x", "./.."] {
            let e = n(bad).unwrap_err();
            assert_eq!(e.kind, crate::workspace::ToolErrorKind::Forbidden, "{bad}");
            assert!(e.message.contains("escapes"), "{}", e.message);
        }
        assert!(n("a\0b").unwrap_err().message.contains("NUL"));
    }

    #[test]
    fn absolute_paths() {
        let base = Path::new("/ws/s1");
        let n = |p: &str| normalize_path(base, Some(Path::new("/data/ws/s1")), p);
        assert_eq!(n("/ws/s1").unwrap(), PathBuf::new());
        assert_eq!(n("/ws/s1/a/b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(n("/ws//s1/./a").unwrap(), PathBuf::from("a"));
        assert_eq!(n("/data/ws/s1/x").unwrap(), PathBuf::from("x"));
        for bad in ["/etc/passwd", "/ws/s1/../s2/x", "/ws/s10", "/", "/ws"] {
            let e = n(bad).unwrap_err();
            assert_eq!(e.kind, crate::workspace::ToolErrorKind::Forbidden, "{bad}");
            assert!(e.message.contains("outside the workspace"), "{}", e.message);
        }
    }

    #[test]
    fn split() {
        assert_eq!(split_parent(Path::new("")), None);
        assert_eq!(
            split_parent(Path::new("a")),
            Some((Path::new(""), Path::new("a")))
        );
        assert_eq!(
            split_parent(Path::new("a/b/c")),
            Some((Path::new("a/b"), Path::new("c")))
        );
    }
}
