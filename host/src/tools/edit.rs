//! `/edit`: replaces one exact occurrence of a text in a file.
//!
//! Request `{path, oldText (non-empty), newText}`; result `{ok: true, path, diff}`
//! (the original's `EditResult`, `ok` included): `path` as
//! the client sent it (as the original did), `diff` a unified diff (`--- a/…`,
//! `+++ b/…`, 3 lines of context) of the change. The match is an exact substring
//! (whitespace and line endings included); it fails when the text is not found,
//! when it occurs more than once (the message says how many times; non-overlapping
//! occurrences are counted), and when the replacement changes nothing. The file
//! must be UTF-8 text of at most [`MAX_EDIT_BYTES`]; it is rewritten atomically and
//! keeps its permission bits (see [`Session::create_atomic`]).

use std::io::Read;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use similar::TextDiff;

use super::required;
use super::truncation::format_size;
use crate::workspace::{Session, ToolError};

/// Largest file /edit works on.
pub const MAX_EDIT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditRequest {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub old_text: Option<String>,
    #[serde(default)]
    pub new_text: Option<String>,
}

pub fn run(session: &Session, req: EditRequest) -> Result<Value, ToolError> {
    let path = required(&req.path, "path")?;
    let old_text = match req.old_text.as_deref() {
        Some(t) if !t.is_empty() => t,
        _ => return Err(ToolError::bad_request("Missing or invalid oldText")),
    };
    let new_text = req
        .new_text
        .as_deref()
        .ok_or_else(|| ToolError::bad_request("Missing or invalid newText"))?;
    let rel = session.resolve(path)?;

    let file = session.open_read(path)?;
    let len = file
        .metadata()
        .map_err(|e| ToolError::from_io(&e, path))?
        .len();
    if len > MAX_EDIT_BYTES {
        return Err(ToolError::bad_request(format!(
            "File too large to edit: {path} is {}; the limit is {}",
            format_size(len as usize),
            format_size(MAX_EDIT_BYTES as usize)
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_EDIT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::from_io(&e, path))?;
    let original = String::from_utf8(bytes).map_err(|_| {
        ToolError::bad_request(format!("Cannot edit {path}: it is not valid UTF-8 text"))
    })?;

    let Some(index) = original.find(old_text) else {
        return Err(ToolError::bad_request(format!(
            "Could not find the exact text in {path}. The old text must match exactly including all whitespace and newlines."
        )));
    };
    let occurrences = original.matches(old_text).count();
    if occurrences > 1 {
        return Err(ToolError::bad_request(format!(
            "Found {occurrences} occurrences of the text in {path}. The text must be unique. Please provide more context to make it unique."
        )));
    }
    let mut updated = String::with_capacity(original.len() - old_text.len() + new_text.len());
    updated.push_str(&original[..index]);
    updated.push_str(new_text);
    updated.push_str(&original[index + old_text.len()..]);
    if updated == original {
        return Err(ToolError::bad_request(format!(
            "No changes made to {path}. The replacement produced identical content."
        )));
    }

    session.create_atomic(path, updated.as_bytes())?;

    let name = rel.to_string_lossy();
    let diff = TextDiff::configure()
        .timeout(Duration::from_secs(2))
        .diff_lines(&original, &updated)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string();
    Ok(json!({ "ok": true, "path": path, "diff": diff }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::{session, write};
    use crate::workspace::ToolErrorKind;
    use std::os::unix::fs::PermissionsExt;

    fn edit(s: &Session, path: &str, old: &str, new: &str) -> Result<Value, ToolError> {
        run(
            s,
            EditRequest {
                path: Some(path.into()),
                old_text: Some(old.into()),
                new_text: Some(new.into()),
                ..Default::default()
            },
        )
    }

    #[test]
    fn replaces_once_with_unified_diff() {
        let (_t, s) = session();
        let body: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        write(&s, "f.txt", &body);
        let v = edit(&s, "f.txt", "line 5\n", "line five\nextra é\n").unwrap();
        assert_eq!(v["path"], "f.txt");
        assert_eq!(
            v["diff"],
            "--- a/f.txt\n+++ b/f.txt\n@@ -2,7 +2,8 @@\n line 2\n line 3\n line 4\n-line 5\n+line five\n+extra é\n line 6\n line 7\n line 8\n"
        );
        let after = std::fs::read_to_string(s.dir().join("f.txt")).unwrap();
        assert_eq!(after, body.replace("line 5\n", "line five\nextra é\n"));
    }

    #[test]
    fn keeps_mode_and_path_as_given() {
        let (_t, s) = session();
        write(&s, "dir/x.sh", "echo a\n");
        let p = s.dir().join("dir/x.sh");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        let v = edit(&s, "./dir/x.sh", "a", "b").unwrap();
        assert_eq!(v["path"], "./dir/x.sh");
        assert!(v["diff"]
            .as_str()
            .unwrap()
            .starts_with("--- a/dir/x.sh\n+++ b/dir/x.sh\n"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "echo b\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn failures() {
        let (t, s) = session();
        write(&s, "f", "aXbXc");
        let e = edit(&s, "f", "Y", "Z").unwrap_err();
        assert!(
            e.message.starts_with("Could not find the exact text in f."),
            "{}",
            e.message
        );
        let e = edit(&s, "f", "X", "Z").unwrap_err();
        assert!(
            e.message
                .starts_with("Found 2 occurrences of the text in f."),
            "{}",
            e.message
        );
        assert!(e.message.contains("must be unique"));
        let e = edit(&s, "f", "aX", "aX").unwrap_err();
        assert!(
            e.message.starts_with("No changes made to f."),
            "{}",
            e.message
        );
        assert_eq!(std::fs::read_to_string(s.dir().join("f")).unwrap(), "aXbXc");
        // Non-overlapping count, as String.split did.
        write(&s, "g", "aaa");
        assert!(edit(&s, "g", "aa", "b").is_ok());
        assert_eq!(std::fs::read_to_string(s.dir().join("g")).unwrap(), "ba");

        let e = edit(&s, "f", "", "x").unwrap_err();
        assert_eq!(e.message, "Missing or invalid oldText");
        let e = run(
            &s,
            EditRequest {
                path: Some("f".into()),
                old_text: Some("a".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.message, "Missing or invalid newText");
        assert_eq!(
            edit(&s, "nope", "a", "b").unwrap_err().kind,
            ToolErrorKind::NotFound
        );
        write(&s, "bin", b"\xff\xfe a");
        assert!(edit(&s, "bin", "a", "b")
            .unwrap_err()
            .message
            .contains("UTF-8"));
        std::fs::write(t.path().join("victim"), "secret").unwrap();
        std::os::unix::fs::symlink(t.path().join("victim"), s.dir().join("l")).unwrap();
        assert_eq!(
            edit(&s, "l", "secret", "x").unwrap_err().kind,
            ToolErrorKind::Forbidden
        );
        assert!(edit(&s, "../../victim", "secret", "x").is_err());
        assert_eq!(
            std::fs::read_to_string(t.path().join("victim")).unwrap(),
            "secret"
        );
    }

    #[test]
    fn crlf_and_no_final_newline() {
        let (_t, s) = session();
        write(&s, "w", "a\r\nb");
        let v = edit(&s, "w", "b", "c").unwrap();
        assert_eq!(std::fs::read(s.dir().join("w")).unwrap(), b"a\r\nc");
        assert!(v["diff"]
            .as_str()
            .unwrap()
            .contains("\\ No newline at end of file"));
    }
}
