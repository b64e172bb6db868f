//! `/write`: creates or replaces a file, atomically.
//!
//! Request `{path, content}`; result `{ok: true, path, bytes}` (the original's
//! `WriteResult`, `ok` included): `path` is the normalized path
//! relative to the session directory, `bytes` the UTF-8 length of `content`.
//! Missing parent directories are created; the file is written to a temporary file
//! in the same directory and renamed over the target (see
//! [`Session::create_atomic`]), so readers never see half of it; an existing file
//! keeps its permission bits. Symlinks (as the target or on the way) are refused.

use serde::Deserialize;
use serde_json::{json, Value};

use super::required;
use crate::workspace::{Session, ToolError};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRequest {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// Required; may be empty.
    #[serde(default)]
    pub content: Option<String>,
}

pub fn run(session: &Session, req: WriteRequest) -> Result<Value, ToolError> {
    let path = required(&req.path, "path")?;
    let content = req
        .content
        .as_deref()
        .ok_or_else(|| ToolError::bad_request("Missing or invalid content"))?;
    let rel = session.create_atomic(path, content.as_bytes())?;
    let shown = if rel.as_os_str().is_empty() {
        ".".to_string()
    } else {
        rel.to_string_lossy().into_owned()
    };
    Ok(json!({ "ok": true, "path": shown, "bytes": content.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::session;
    use crate::workspace::ToolErrorKind;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn write(s: &Session, path: &str, content: &str) -> Result<Value, ToolError> {
        run(
            s,
            WriteRequest {
                path: Some(path.into()),
                content: Some(content.into()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn writes_and_creates_parents() {
        let (_t, s) = session();
        let v = write(&s, "./src/deep/../main.rs", "fn main() {}\n// é\n").unwrap();
        assert_eq!(v, json!({"ok": true, "path": "src/main.rs", "bytes": 19}));
        assert_eq!(
            std::fs::read_to_string(s.dir().join("src/main.rs")).unwrap(),
            "fn main() {}\n// é\n"
        );
        // `deep/..` is resolved lexically: nothing else is created.
        assert!(!s.dir().join("src/deep").exists());
        // Absolute inside the session.
        let abs = s.dir().join("abs.txt");
        let v = write(&s, abs.to_str().unwrap(), "").unwrap();
        assert_eq!(v, json!({"ok": true, "path": "abs.txt", "bytes": 0}));
        assert_eq!(std::fs::read(&abs).unwrap(), b"");
    }

    #[test]
    fn overwrite_keeps_mode() {
        let (_t, s) = session();
        let p = s.dir().join("run.sh");
        std::fs::write(&p, "old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        write(&s, "run.sh", "#!/bin/sh\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "#!/bin/sh\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn refusals() {
        let (t, s) = session();
        assert_eq!(
            run(&s, WriteRequest::default()).unwrap_err().message,
            "Missing or invalid path"
        );
        let e = run(
            &s,
            WriteRequest {
                path: Some("a".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.message, "Missing or invalid content");
        std::fs::write(t.path().join("victim"), "keep").unwrap();
        symlink(t.path().join("victim"), s.dir().join("link")).unwrap();
        assert_eq!(
            write(&s, "link", "x").unwrap_err().kind,
            ToolErrorKind::Forbidden
        );
        symlink(t.path(), s.dir().join("up")).unwrap();
        assert_eq!(
            write(&s, "up/victim", "x").unwrap_err().kind,
            ToolErrorKind::Forbidden
        );
        assert!(write(&s, "../../victim", "x").is_err());
        assert!(write(&s, t.path().join("victim").to_str().unwrap(), "x").is_err());
        assert_eq!(
            std::fs::read_to_string(t.path().join("victim")).unwrap(),
            "keep"
        );
        assert!(write(&s, ".", "x")
            .unwrap_err()
            .message
            .contains("Is a directory"));
    }
}
