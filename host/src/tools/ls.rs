//! `/ls`: one directory's entries.
//!
//! Request `{path? (default "."), limit? (default 500)}`; result `{output,
//! truncation?, entryLimitReached?}`. `output` has one entry per line, dotfiles
//! included, directories suffixed with `/`; `"(empty directory)"` when there is
//! none. Names are sorted as the original sorted them (lowercased, then
//! `localeCompare`, i.e. the Unicode root collation): see [`collation_key`].
//! Symlinks are listed by name and never followed (no `/` even when they point at a
//! directory). The text is head-truncated at 2000 lines / 50 KB (`truncation` then
//! describes the cut).
//!
//! When `limit` cut the listing, `entryLimitReached: true` is set and a notice is
//! appended after a blank line: `[500 entries limit reached. Use limit=1000 for
//! more]`; a 50 KB cut adds `50KB limit reached` (notices are joined with `. ` in one
//! pair of brackets, as grep's are).

use serde::Deserialize;
use serde_json::{json, Value};

use super::truncation::{truncate_lines, TruncatedBy, DEFAULT_MAX_BYTES, DEFAULT_MAX_LINES};
use super::{limit_or, num, path_or_dot};
use crate::workspace::{sys, Session, ToolError};

/// Entries listed when the request gives no limit.
pub const DEFAULT_LS_LIMIT: usize = 500;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LsRequest {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default, deserialize_with = "num::opt_i64")]
    pub limit: Option<i64>,
}

pub fn run(session: &Session, req: LsRequest) -> Result<Value, ToolError> {
    let path = path_or_dot(&req.path);
    let limit = limit_or(req.limit, DEFAULT_LS_LIMIT);
    let fd = session.resolve_dir(path).map_err(|e| {
        if e.message.starts_with("Not a directory")
            && session.metadata(path).is_ok_and(|m| !m.is_dir())
        {
            crate::workspace::ToolError::bad_request(format!("Path is not a directory: {path}"))
        } else {
            e
        }
    })?;
    let dir = std::fs::read_dir(sys::proc_fd_path(std::os::fd::AsFd::as_fd(&fd)))
        .map_err(|e| ToolError::from_io(&e, path))?;
    let mut entries: Vec<(Vec<u32>, String, bool)> = Vec::new();
    for entry in dir {
        let entry = entry.map_err(|e| ToolError::from_io(&e, path))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // file_type() is the entry itself (d_type or lstat): symlinks are not followed.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        entries.push((collation_key(&name), name, is_dir));
    }
    if entries.is_empty() {
        return Ok(json!({ "output": "(empty directory)" }));
    }
    entries.sort_unstable();
    let limited = entries.len() > limit;
    let lines: Vec<String> = entries
        .into_iter()
        .take(limit)
        .map(|(_, name, is_dir)| if is_dir { name + "/" } else { name })
        .collect();
    let truncation = truncate_lines(&lines, DEFAULT_MAX_LINES, DEFAULT_MAX_BYTES);

    let mut notices = Vec::new();
    if limited {
        notices.push(format!(
            "{limit} entries limit reached. Use limit={} for more",
            limit.saturating_mul(2)
        ));
    }
    match truncation.truncated_by {
        Some(TruncatedBy::Bytes) => {
            notices.push(format!("{}KB limit reached", DEFAULT_MAX_BYTES / 1024))
        }
        Some(TruncatedBy::Lines) => {
            notices.push(format!("{DEFAULT_MAX_LINES} lines limit reached"))
        }
        None => {}
    }
    let mut output = truncation.content.clone();
    if !notices.is_empty() {
        output = format!("{output}\n\n[{}]", notices.join(". "));
    }
    let mut result = json!({ "output": output });
    if truncation.cut() {
        result["truncation"] = serde_json::to_value(&truncation).expect("truncation serializes");
    }
    if limited {
        result["entryLimitReached"] = json!(true);
    }
    Ok(result)
}

/// ASCII punctuation and symbols in the order of the root collation, after the
/// white space (all before the digits, then the letters).
const ASCII_SYMBOLS: &[u8] = b"\t\n\x0b\x0c\r _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$";

/// Sort key of a name: its lowercase form, character by character, in the order of
/// the Unicode root collation that the original's `localeCompare` used (ICU): ASCII
/// white space, punctuation and symbols (`_` first, `$` last), then digits, then
/// letters; ASCII control characters are ignored. That order is exact for ASCII
/// names (ties, which `localeCompare` left in directory order, are then broken by
/// the exact name). Other characters come after ASCII in code point order, where
/// the root collation would interleave them (`é` right after `e`).
pub fn collation_key(name: &str) -> Vec<u32> {
    name.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(0x100 + c as u32),
            'a'..='z' => Some(0x200 + c as u32),
            _ if c.is_ascii() => ASCII_SYMBOLS
                .iter()
                .position(|&b| b == c as u8)
                .map(|i| i as u32),
            _ => Some(0x1000 + c as u32),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::{session, write};
    use crate::workspace::ToolErrorKind;

    fn ls(s: &Session, path: Option<&str>, limit: Option<i64>) -> Result<Value, ToolError> {
        run(
            s,
            LsRequest {
                path: path.map(Into::into),
                limit,
                ..Default::default()
            },
        )
    }

    #[test]
    fn lists_sorted_with_dirs_and_dotfiles() {
        let (t, s) = session();
        write(&s, "b.txt", "");
        write(&s, "A.txt", "");
        write(&s, ".hidden", "");
        write(&s, "sub/inner", "");
        write(&s, "Zed/x", "");
        std::os::unix::fs::symlink(t.path(), s.dir().join("link")).unwrap();
        let v = ls(&s, None, None).unwrap();
        assert_eq!(
            v,
            json!({"output": ".hidden\nA.txt\nb.txt\nlink\nsub/\nZed/"})
        );
        let v = ls(&s, Some("sub"), None).unwrap();
        assert_eq!(v["output"], "inner");
        std::fs::create_dir(s.dir().join("empty")).unwrap();
        assert_eq!(
            ls(&s, Some("empty"), None).unwrap(),
            json!({"output": "(empty directory)"})
        );
    }

    /// The order of `localeCompare` on lowercased names (checked against Node 20 with
    /// ICU 78).
    #[test]
    fn root_collation_order() {
        let (_t, s) = session();
        let names = [
            "zeta",
            "_u",
            "-x",
            ".env",
            "~a",
            "$b",
            "1.txt",
            "10",
            "9",
            "A.md",
            "a_b",
            "a.b",
            "a-b",
            "ab",
            "B",
            "__init__.py",
            "_config.yml",
            "@x",
            "#h",
            "+p",
        ];
        for n in names {
            write(&s, n, "");
        }
        let v = ls(&s, None, None).unwrap();
        assert_eq!(
            v["output"],
            "__init__.py\n_config.yml\n_u\n-x\n.env\n@x\n#h\n+p\n~a\n$b\n1.txt\n10\n9\na_b\na-b\na.b\nA.md\nab\nB\nzeta"
        );
        // Case is ignored; ties go by the exact name; control characters are ignored.
        assert_eq!(collation_key("ABC"), collation_key("abc"));
        assert_eq!(collation_key("a\u{1}b"), collation_key("ab"));
        assert!(collation_key("z") < collation_key("é"));
    }

    #[test]
    fn limit_is_reported() {
        let (_t, s) = session();
        for i in 0..7 {
            write(&s, &format!("f{i}"), "");
        }
        let v = ls(&s, None, Some(5)).unwrap();
        assert_eq!(
            v["output"],
            "f0\nf1\nf2\nf3\nf4\n\n[5 entries limit reached. Use limit=10 for more]"
        );
        assert_eq!(v["entryLimitReached"], true);
        assert!(v.get("truncation").is_none());
        let v = ls(&s, None, Some(7)).unwrap();
        assert!(v.get("entryLimitReached").is_none());
        // Non-positive limit means the default.
        let v = ls(&s, None, Some(0)).unwrap();
        assert!(v.get("entryLimitReached").is_none());
    }

    #[test]
    fn byte_truncation() {
        let (_t, s) = session();
        for i in 0..300 {
            write(&s, &format!("{i:03}{}", "n".repeat(200)), "");
        }
        let v = ls(&s, None, None).unwrap();
        let t = &v["truncation"];
        assert_eq!(t["truncatedBy"], "bytes");
        assert_eq!(t["totalLines"], 300);
        assert!(v["output"]
            .as_str()
            .unwrap()
            .ends_with("\n\n[50KB limit reached]"));
    }

    #[test]
    fn errors() {
        let (t, s) = session();
        write(&s, "file", "");
        assert_eq!(
            ls(&s, Some("file"), None).unwrap_err().message,
            "Path is not a directory: file"
        );
        assert_eq!(
            ls(&s, Some("nope"), None).unwrap_err().kind,
            ToolErrorKind::NotFound
        );
        std::os::unix::fs::symlink(t.path(), s.dir().join("up")).unwrap();
        assert_eq!(
            ls(&s, Some("up"), None).unwrap_err().kind,
            ToolErrorKind::Forbidden
        );
        assert!(ls(&s, Some(".."), None).is_err());
        assert!(ls(&s, Some("/etc"), None).is_err());
    }
}
