//! `/find`: files whose name or path matches a glob.
//!
//! Request `{pattern, path? (default ".", trimmed as the original did), limit?
//! (default 1000)}`; result `{files, truncated, limit, truncation?}` with paths
//! relative to the search directory (no `./`), sorted (component-wise: `a/b.rs`
//! before `a.rs`).
//!
//! Pattern semantics, one rule:
//! - without `/`, the glob matches file *names* at any depth (`*.rs`, `Cargo.*`),
//!   like `fd --glob`;
//! - with `/`, it matches paths relative to the search directory, where `*` and `?`
//!   stay within one component and `**` spans any number (`src/**/*.rs`,
//!   `*/mod.rs`); a leading `./` or `/` is dropped.
//!
//! Globs are case-sensitive; `{a,b}`, `[abc]` and `\` escapes work (globset).
//! Regular files only: directories, symlinks and special files are not listed.
//! Hidden files are included; `.gitignore`/`.ignore` are honoured (also outside a
//! git repository) and `.git` is skipped (see the `walk` module). `truncated` is
//! true when more than `limit` files matched or the list passed 50 KB; the
//! `truncation` object then describes the cut of the newline-joined list (with
//! `maxLines` = `limit`), as in the original, except that its `totalLines` and
//! `totalBytes` count every match (the original stopped `fd` at `limit + 1`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use globset::{GlobBuilder, GlobMatcher};
use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::truncation::{truncate_lines, DEFAULT_MAX_BYTES};
use super::{js_trim, limit_or, num, path_or_dot, required, walk};
use crate::workspace::{Session, ToolError};

/// Files listed when the request gives no limit.
pub const DEFAULT_FIND_LIMIT: usize = 1000;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindRequest {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default, deserialize_with = "num::opt_i64")]
    pub limit: Option<i64>,
}

/// How a find pattern is matched (see the module docs).
#[derive(Debug, Clone)]
pub struct FindPattern {
    matcher: GlobMatcher,
    by_path: bool,
}

impl FindPattern {
    pub fn new(pattern: &str) -> Result<FindPattern, ToolError> {
        let mut glob = pattern;
        loop {
            if let Some(rest) = glob.strip_prefix("./") {
                glob = rest;
            } else if let Some(rest) = glob.strip_prefix('/') {
                glob = rest;
            } else {
                break;
            }
        }
        let by_path = glob.contains('/');
        let matcher = GlobBuilder::new(glob)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| ToolError::bad_request(format!("Invalid glob pattern: {e}")))?
            .compile_matcher();
        Ok(FindPattern { matcher, by_path })
    }

    /// Whether a file at `rel` (relative to the search directory) matches.
    pub fn is_match(&self, rel: &Path) -> bool {
        if self.by_path {
            self.matcher.is_match(rel)
        } else {
            rel.file_name().is_some_and(|n| self.matcher.is_match(n))
        }
    }
}

pub fn run(session: &Session, req: FindRequest) -> Result<Value, ToolError> {
    let pattern = required(&req.pattern, "pattern")?;
    // The original trimmed find's path (not grep's or ls's).
    let path = js_trim(path_or_dot(&req.path));
    let limit = limit_or(req.limit, DEFAULT_FIND_LIMIT);
    let pattern = FindPattern::new(pattern)?;
    let root = session.walk_root(path)?;
    if !root.is_dir() {
        return Err(ToolError::bad_request(format!(
            "Path is not a directory: {path}"
        )));
    }

    let found = Mutex::new(Vec::<PathBuf>::new());
    let mut builder = Collect {
        pattern: &pattern,
        prefix: root.path(),
        found: &found,
    };
    walk::builder(session, &root)
        .build_parallel()
        .visit(&mut builder);
    let mut files = found.into_inner().unwrap_or_else(|e| e.into_inner());
    files.sort_unstable();
    let files: Vec<String> = files
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();

    if files.is_empty() {
        return Ok(json!({ "files": [], "truncated": false, "limit": limit }));
    }
    let truncation = truncate_lines(&files, limit, DEFAULT_MAX_BYTES);
    let truncated = truncation.cut();
    let shown = &files[..truncation.output_lines];
    let mut result = json!({ "files": shown, "truncated": truncated, "limit": limit });
    if truncated {
        result["truncation"] = serde_json::to_value(&truncation).expect("truncation serializes");
    }
    Ok(result)
}

struct Collect<'a> {
    pattern: &'a FindPattern,
    prefix: &'a Path,
    found: &'a Mutex<Vec<PathBuf>>,
}

impl<'s> ParallelVisitorBuilder<'s> for Collect<'s> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Visitor {
            pattern: self.pattern,
            prefix: self.prefix,
            found: self.found,
            local: Vec::new(),
        })
    }
}

struct Visitor<'a> {
    pattern: &'a FindPattern,
    prefix: &'a Path,
    found: &'a Mutex<Vec<PathBuf>>,
    local: Vec<PathBuf>,
}

impl ParallelVisitor for Visitor<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        let Ok(entry) = entry else {
            return WalkState::Continue;
        };
        if entry.depth() == 0 || !entry.file_type().is_some_and(|t| t.is_file()) {
            return WalkState::Continue;
        }
        if let Ok(rel) = entry.path().strip_prefix(self.prefix) {
            if self.pattern.is_match(rel) {
                self.local.push(rel.to_path_buf());
            }
        }
        WalkState::Continue
    }
}

impl Drop for Visitor<'_> {
    fn drop(&mut self) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        found.append(&mut self.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::{session, write};
    use crate::workspace::ToolErrorKind;

    fn find(
        s: &Session,
        pattern: &str,
        path: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Value, ToolError> {
        run(
            s,
            FindRequest {
                pattern: Some(pattern.into()),
                path: path.map(Into::into),
                limit,
                ..Default::default()
            },
        )
    }

    fn files(v: &Value) -> Vec<&str> {
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect()
    }

    fn tree(s: &Session) {
        for f in [
            "main.rs",
            "src/lib.rs",
            "src/a/mod.rs",
            "src/a/deep/x.rs",
            "src/a/deep/y.txt",
            ".hidden/h.rs",
            ".dot.rs",
            "README.md",
            "MAIN.RS",
        ] {
            write(s, f, "");
        }
    }

    #[test]
    fn name_patterns_match_at_any_depth() {
        let (_t, s) = session();
        tree(&s);
        std::fs::create_dir(s.dir().join("dir.rs")).unwrap();
        let v = find(&s, "*.rs", None, None).unwrap();
        assert_eq!(
            files(&v),
            [
                ".dot.rs",
                ".hidden/h.rs",
                "main.rs",
                "src/a/deep/x.rs",
                "src/a/mod.rs",
                "src/lib.rs"
            ]
        );
        assert_eq!(v["truncated"], false);
        assert_eq!(v["limit"], 1000);
        assert!(v.get("truncation").is_none());
        assert_eq!(
            files(&find(&s, "mod.rs", None, None).unwrap()),
            ["src/a/mod.rs"]
        );
        assert_eq!(
            files(&find(&s, "*.{md,txt}", None, None).unwrap()),
            ["README.md", "src/a/deep/y.txt"]
        );
        // Relative to the search dir, whose path is trimmed.
        assert_eq!(
            files(&find(&s, "*.rs", Some("src/a"), None).unwrap()),
            ["deep/x.rs", "mod.rs"]
        );
        assert_eq!(
            files(&find(&s, "*.rs", Some(" src/a\n"), None).unwrap()),
            ["deep/x.rs", "mod.rs"]
        );
    }

    #[test]
    fn path_patterns() {
        let (_t, s) = session();
        tree(&s);
        assert_eq!(
            files(&find(&s, "src/**/*.rs", None, None).unwrap()),
            ["src/a/deep/x.rs", "src/a/mod.rs", "src/lib.rs"]
        );
        assert_eq!(
            files(&find(&s, "src/*.rs", None, None).unwrap()),
            ["src/lib.rs"]
        );
        assert_eq!(
            files(&find(&s, "./src/*.rs", None, None).unwrap()),
            ["src/lib.rs"]
        );
        assert_eq!(
            files(&find(&s, "*/mod.rs", Some("src"), None).unwrap()),
            ["a/mod.rs"]
        );
        assert_eq!(
            files(&find(&s, "**/deep/*", None, None).unwrap()),
            ["src/a/deep/x.rs", "src/a/deep/y.txt"]
        );
        assert!(files(&find(&s, "src/a", None, None).unwrap()).is_empty());
    }

    #[test]
    fn gitignore_without_git_and_dot_git_skipped() {
        let (_t, s) = session();
        tree(&s);
        write(&s, ".gitignore", "target/\n*.log\n");
        write(&s, "target/debug/out.rs", "");
        write(&s, "src/app.log", "");
        write(&s, "src/.ignore", "deep/\n");
        write(&s, ".git/config.rs", "");
        write(&s, "sub/.git", "gitdir: x");
        let v = find(&s, "*", None, None).unwrap();
        assert_eq!(
            files(&v),
            [
                ".dot.rs",
                ".gitignore",
                ".hidden/h.rs",
                "MAIN.RS",
                "README.md",
                "main.rs",
                "src/.ignore",
                "src/a/mod.rs",
                "src/lib.rs"
            ]
        );
        // The ignore files of the directories above the search dir apply too.
        write(&s, "src/a/b.log", "");
        let v = find(&s, "*", Some("src"), None).unwrap();
        assert_eq!(files(&v), [".ignore", "a/mod.rs", "lib.rs"]);
        let v = find(&s, "*", Some("src/a"), None).unwrap();
        assert_eq!(files(&v), ["mod.rs"]);
    }

    #[test]
    fn limit_and_truncation() {
        let (_t, s) = session();
        for i in 0..12 {
            write(&s, &format!("f{i:02}.txt"), "");
        }
        let v = find(&s, "*.txt", None, Some(10)).unwrap();
        assert_eq!(files(&v).len(), 10);
        assert_eq!(files(&v)[9], "f09.txt");
        assert_eq!(v["truncated"], true);
        assert_eq!(v["limit"], 10);
        assert_eq!(v["truncation"]["truncatedBy"], "lines");
        assert_eq!(v["truncation"]["totalLines"], 12);
        assert_eq!(v["truncation"]["maxLines"], 10);
        let v = find(&s, "*.txt", None, Some(12)).unwrap();
        assert_eq!(v["truncated"], false);
        let v = find(&s, "*.none", None, None).unwrap();
        assert_eq!(v, json!({"files": [], "truncated": false, "limit": 1000}));
    }

    #[test]
    fn symlinks_are_not_followed() {
        let (t, s) = session();
        write(&s, "real.rs", "");
        std::fs::create_dir(t.path().join("out")).unwrap();
        std::fs::write(t.path().join("out/secret.rs"), "").unwrap();
        std::os::unix::fs::symlink(t.path().join("out"), s.dir().join("linkdir")).unwrap();
        std::os::unix::fs::symlink(t.path().join("out/secret.rs"), s.dir().join("link.rs"))
            .unwrap();
        assert_eq!(files(&find(&s, "*.rs", None, None).unwrap()), ["real.rs"]);
        assert_eq!(
            find(&s, "*.rs", Some("linkdir"), None).unwrap_err().kind,
            ToolErrorKind::Forbidden
        );
    }

    #[test]
    fn errors() {
        let (_t, s) = session();
        write(&s, "f", "");
        assert_eq!(
            run(&s, FindRequest::default()).unwrap_err().message,
            "Missing or invalid pattern"
        );
        assert!(find(&s, "a[", None, None)
            .unwrap_err()
            .message
            .contains("Invalid glob"));
        assert!(find(&s, "*", Some("f"), None)
            .unwrap_err()
            .message
            .contains("not a directory"));
        assert_eq!(
            find(&s, "*", Some("nope"), None).unwrap_err().kind,
            ToolErrorKind::NotFound
        );
        assert!(find(&s, "*", Some(".."), None).is_err());
        assert!(find(&s, "*", Some("/etc"), None).is_err());
    }
}
