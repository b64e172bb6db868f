//! `/edit`: replaces one exact occurrence of a text in a file.
//!
//! Request `{path, oldText (non-empty), newText}`; result `{ok: true, path, diff}`
//! (the original's `EditResult`, `ok` included): `path` as the client sent it (as the
//! original did), `diff` the change in the original's own format (see [`diff`]).
//! The match is an exact substring (whitespace and line endings included); it fails,
//! in the original's words, when the text is not found, when it occurs more than once
//! (the message says how many times; non-overlapping occurrences are counted), and
//! when the replacement changes nothing. The file must be UTF-8 text of at most
//! [`MAX_EDIT_BYTES`] (the original decoded anything and wrote the U+FFFD back); it
//! is rewritten atomically and keeps its permission bits (see
//! [`Session::create_atomic`]).

use std::io::Read;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use similar::{capture_diff_slices_deadline, Algorithm, DiffTag};

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
            "No changes made to {path}. The replacement produced identical content. This might indicate an issue with special characters or the text not existing as expected."
        )));
    }

    session.create_atomic(path, updated.as_bytes())?;
    Ok(json!({ "ok": true, "path": path, "diff": diff(&original, &updated) }))
}

/// Unchanged lines shown around a change.
const DIFF_CONTEXT: usize = 4;
/// Time for computing a diff before settling for a coarser one.
const DIFF_TIME: Duration = Duration::from_secs(2);
/// Edits (added plus removed lines) and search nodes (24 bytes each) of
/// [`greedy_runs`] before it gives up.
const DIFF_EDITS: isize = 1 << 13;
const DIFF_NODES: usize = 1 << 20;

/// The change from `old` to `new` in the original's format (not a unified diff):
/// one line per shown line, `+N text` (added, numbered in the new text), `-N text`
/// (removed, numbered in the old text) or ` N text` (unchanged), the numbers
/// right-aligned to the width of the larger line count; up to 4 unchanged lines
/// before and after each change (all of them between two changes), and ` <pad> ...`
/// where unchanged lines are skipped. No header, no final newline.
///
/// The runs of lines are the ones the `diff` package's `diffLines` (which the
/// original used) finds: see [`greedy_runs`].
pub fn diff(old: &str, new: &str) -> String {
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let deadline = Instant::now() + DIFF_TIME;
    let runs = greedy_runs(&old_lines, &new_lines, deadline)
        .unwrap_or_else(|| myers_runs(&old_lines, &new_lines, deadline));
    let (mut o, mut n) = (0, 0);
    let parts: Vec<(DiffTag, &[&str])> = runs
        .into_iter()
        .map(|(tag, count)| match tag {
            DiffTag::Insert => {
                n += count;
                (tag, &new_lines[n - count..n])
            }
            DiffTag::Delete => {
                o += count;
                (tag, &old_lines[o - count..o])
            }
            _ => {
                o += count;
                n += count;
                (DiffTag::Equal, &old_lines[o - count..o])
            }
        })
        .collect();

    let count = |s: &str| s.bytes().filter(|&b| b == b'\n').count() + 1;
    let width = count(old).max(count(new)).to_string().len();
    let text = |line: &str| line.strip_suffix('\n').unwrap_or(line).to_string();
    let skipped = format!(" {:width$} ...", "");
    let mut out: Vec<String> = Vec::new();
    let (mut old_no, mut new_no) = (1, 1);
    let mut after_change = false;
    for (i, &(tag, lines)) in parts.iter().enumerate() {
        match tag {
            DiffTag::Delete => {
                for line in lines {
                    out.push(format!("-{old_no:>width$} {}", text(line)));
                    old_no += 1;
                }
                after_change = true;
            }
            DiffTag::Insert => {
                for line in lines {
                    out.push(format!("+{new_no:>width$} {}", text(line)));
                    new_no += 1;
                }
                after_change = true;
            }
            _ => {
                let before_change = parts.get(i + 1).is_some_and(|(t, _)| *t != DiffTag::Equal);
                if !after_change && !before_change {
                    old_no += lines.len();
                    new_no += lines.len();
                } else {
                    let skip_start = if after_change {
                        0
                    } else {
                        lines.len().saturating_sub(DIFF_CONTEXT)
                    };
                    let rest = lines.len() - skip_start;
                    let shown = if before_change {
                        rest
                    } else {
                        rest.min(DIFF_CONTEXT)
                    };
                    let skip_end = rest - shown;
                    if skip_start > 0 {
                        out.push(skipped.clone());
                        old_no += skip_start;
                        new_no += skip_start;
                    }
                    for line in &lines[skip_start..skip_start + shown] {
                        out.push(format!(" {old_no:>width$} {}", text(line)));
                        old_no += 1;
                        new_no += 1;
                    }
                    if skip_end > 0 {
                        out.push(skipped.clone());
                        old_no += skip_end;
                        new_no += skip_end;
                    }
                }
                after_change = false;
            }
        }
    }
    out.join("\n")
}

/// Runs of `(Equal | Delete | Insert, line count)` turning `old` into `new`, as the
/// `diff` package finds them: Myers' greedy search forward from the start, taking
/// the longest common run at each step, preferring at each diagonal the path that
/// got further in `old` (a removal on a tie), without stripping a common suffix.
/// Runs are merged per kind but not reordered. `None` past the deadline,
/// [`DIFF_EDITS`] or [`DIFF_NODES`] (then [`myers_runs`] does).
fn greedy_runs(old: &[&str], new: &[&str], deadline: Instant) -> Option<Vec<(DiffTag, usize)>> {
    /// One run of a path, linked to the run before it (`NONE` at the start).
    struct Node {
        tag: DiffTag,
        count: usize,
        prev: usize,
    }
    #[derive(Clone, Copy)]
    struct Path {
        /// Index of the last `old` line consumed (-1 = none).
        old_pos: isize,
        last: usize,
    }
    const NONE: usize = usize::MAX;
    let (old_len, new_len) = (old.len() as isize, new.len() as isize);
    let mut nodes: Vec<Node> = Vec::new();

    // Extends `path` along its diagonal while the lines agree; returns its new_pos.
    let slide = |nodes: &mut Vec<Node>, path: &mut Path, diagonal: isize| -> isize {
        let (mut o, mut n) = (path.old_pos, path.old_pos - diagonal);
        let mut common = 0;
        while n + 1 < new_len && o + 1 < old_len && old[(o + 1) as usize] == new[(n + 1) as usize] {
            o += 1;
            n += 1;
            common += 1;
        }
        if common > 0 {
            nodes.push(Node {
                tag: DiffTag::Equal,
                count: common,
                prev: path.last,
            });
            path.last = nodes.len() - 1;
        }
        path.old_pos = o;
        n
    };
    // A copy of `path` with one more removed or added line.
    let step = |nodes: &mut Vec<Node>, path: Path, tag: DiffTag| -> Path {
        let node = match nodes.get(path.last) {
            Some(last) if last.tag == tag => Node {
                tag,
                count: last.count + 1,
                prev: last.prev,
            },
            _ => Node {
                tag,
                count: 1,
                prev: path.last,
            },
        };
        nodes.push(node);
        Path {
            old_pos: path.old_pos + isize::from(tag == DiffTag::Delete),
            last: nodes.len() - 1,
        }
    };
    let runs = |nodes: &[Node], mut last: usize| {
        let mut runs = Vec::new();
        while let Some(node) = nodes.get(last) {
            runs.push((node.tag, node.count));
            last = node.prev;
        }
        runs.reverse();
        runs
    };

    let max_edits = (old_len + new_len).min(DIFF_EDITS);
    // Best path per diagonal (new_pos = old_pos - diagonal), at diagonal + offset.
    let offset = max_edits + 1;
    let mut best: Vec<Option<Path>> = vec![None; (2 * offset + 1) as usize];
    let mut start = Path {
        old_pos: -1,
        last: NONE,
    };
    let new_pos = slide(&mut nodes, &mut start, 0);
    if start.old_pos + 1 >= old_len && new_pos + 1 >= new_len {
        return Some(runs(&nodes, start.last));
    }
    best[offset as usize] = Some(start);
    let (mut min_diagonal, mut max_diagonal) = (isize::MIN, isize::MAX);
    for edits in 1..=max_edits {
        let mut diagonal = min_diagonal.max(-edits);
        while diagonal <= max_diagonal.min(edits) {
            let at = (diagonal + offset) as usize;
            let remove = best[at - 1].take();
            let add = best[at + 1];
            let can_add = add.is_some_and(|p| (0..new_len).contains(&(p.old_pos - diagonal)));
            let can_remove = remove.is_some_and(|p| p.old_pos + 1 < old_len);
            let mut path = match (remove, add) {
                (Some(r), Some(a)) if can_remove && can_add && r.old_pos >= a.old_pos => {
                    step(&mut nodes, r, DiffTag::Delete)
                }
                (Some(r), _) if can_remove && !can_add => step(&mut nodes, r, DiffTag::Delete),
                (_, Some(a)) if can_add => step(&mut nodes, a, DiffTag::Insert),
                _ => {
                    best[at] = None;
                    diagonal += 2;
                    continue;
                }
            };
            let new_pos = slide(&mut nodes, &mut path, diagonal);
            if path.old_pos + 1 >= old_len && new_pos + 1 >= new_len {
                return Some(runs(&nodes, path.last));
            }
            best[at] = Some(path);
            if path.old_pos + 1 >= old_len {
                max_diagonal = max_diagonal.min(diagonal - 1);
            }
            if new_pos + 1 >= new_len {
                min_diagonal = min_diagonal.max(diagonal + 1);
            }
            diagonal += 2;
        }
        if nodes.len() > DIFF_NODES || Instant::now() > deadline {
            return None;
        }
    }
    None
}

/// Runs from `similar`'s Myers diff (removals before additions), for changes too
/// large for [`greedy_runs`].
fn myers_runs(old: &[&str], new: &[&str], deadline: Instant) -> Vec<(DiffTag, usize)> {
    let mut runs: Vec<(DiffTag, usize)> = Vec::new();
    let mut push = |tag: DiffTag, count: usize| match runs.last_mut() {
        _ if count == 0 => {}
        Some((t, c)) if *t == tag => *c += count,
        _ => runs.push((tag, count)),
    };
    for op in capture_diff_slices_deadline(Algorithm::Myers, old, new, Some(deadline)) {
        let (tag, o, n) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => push(tag, o.len()),
            _ => {
                push(DiffTag::Delete, o.len());
                push(DiffTag::Insert, n.len());
            }
        }
    }
    runs
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
    fn replaces_once_with_the_originals_diff() {
        let (_t, s) = session();
        let body: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        write(&s, "f.txt", &body);
        let v = edit(&s, "f.txt", "line 5\n", "line five\nextra é\n").unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["path"], "f.txt");
        assert_eq!(
            v["diff"],
            "  1 line 1\n  2 line 2\n  3 line 3\n  4 line 4\n- 5 line 5\n+ 5 line five\n+ 6 extra é\n  6 line 6\n  7 line 7\n  8 line 8\n  9 line 9\n    ..."
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
        assert_eq!(
            v,
            json!({"ok": true, "path": "./dir/x.sh", "diff": "-1 echo a\n+1 echo b"})
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "echo b\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn diff_format() {
        let lines = |r: std::ops::RangeInclusive<u32>| -> String {
            r.map(|i| format!("line {i}\n")).collect()
        };
        // The original's own test case.
        assert_eq!(
            diff("line1\ntarget line\nline3", "line1\nupdated line\nline3"),
            " 1 line1\n-2 target line\n+2 updated line\n 3 line3"
        );
        // Four lines of context each side, `...` where lines are skipped, numbers
        // padded to the width of the larger line count.
        let old = lines(1..=20);
        let new = old.replace("line 10\n", "X\n");
        assert_eq!(
            diff(&old, &new),
            "    ...\n  6 line 6\n  7 line 7\n  8 line 8\n  9 line 9\n-10 line 10\n+10 X\n 11 line 11\n 12 line 12\n 13 line 13\n 14 line 14\n    ..."
        );
        // Two changes: everything between them is shown.
        let new = old
            .replace("line 3\n", "THREE\n")
            .replace("line 15\n", "FIFTEEN\n");
        let middle: String = (4..=14).map(|i| format!("\n {i:>2} line {i}")).collect();
        assert_eq!(
            diff(&old, &new),
            format!(
                "  1 line 1\n  2 line 2\n- 3 line 3\n+ 3 THREE{middle}\n-15 line 15\n+15 FIFTEEN\n 16 line 16\n 17 line 17\n 18 line 18\n 19 line 19\n    ..."
            )
        );
        // Pure insertion and deletion: added lines numbered in the new text.
        assert_eq!(diff("a\nb\n", "a\nNEW\nb\n"), " 1 a\n+2 NEW\n 2 b");
        assert_eq!(diff("a\nOLD\nb\n", "a\nb\n"), " 1 a\n-2 OLD\n 3 b");
        // No newline at the end: the last line differs from itself with one.
        assert_eq!(diff("a", "b"), "-1 a\n+1 b");
        assert_eq!(diff("x\ny", "x\ny\n"), " 1 x\n-2 y\n+2 y");
        // CRLF: the `\r` stays in the line.
        assert_eq!(diff("a\r\nb", "a\r\nc"), " 1 a\r\n-2 b\n+2 c");
        // Empty lines.
        assert_eq!(diff("\n\nx\n", "\n\ny\n"), " 1 \n 2 \n-3 x\n+3 y");
    }

    /// Where lines repeat, the alignment is the `diff` package's (checked against
    /// `diffLines` of diff 7.0.0 on thousands of random edits; these are some).
    #[test]
    fn diff_alignment_follows_diff_lines() {
        assert_eq!(
            diff("}1\na\n}\na\nx y\nx y\n", "x y1 y\nx y\n"),
            "-1 }1\n-2 a\n-3 }\n-4 a\n+1 x y1 y\n 5 x y\n-6 x y"
        );
        assert_eq!(
            diff(
                "a\n}\nx y3\nx y\nx y3\n}\n}\nx y4\na0\n",
                "a\n}\nx yx y\n}\nx y\n}4\nx y\nx y3\n}\n}\nx y4\na0\n"
            ),
            "  1 a\n  2 }\n- 3 x y3\n+ 3 x yx y\n+ 4 }\n  4 x y\n+ 6 }4\n+ 7 x y\n  5 x y3\n  6 }\n  7 }\n  8 x y4\n    ..."
        );
        // A common suffix is not stripped first: the search runs from the start.
        assert_eq!(diff("a\n", "a\na\n"), " 1 a\n+2 a");
        assert_eq!(diff("x\na\n", "a\nx\na\n"), "+1 a\n 1 x\n 2 a");
    }

    /// A change too large for the greedy search still gets a diff in the same format.
    #[test]
    fn large_changes_fall_back() {
        let old: String = (0..3000).map(|i| format!("a{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("b{i}\n")).collect();
        let started = Instant::now();
        let d = diff(&old, &new);
        assert!(started.elapsed() < DIFF_TIME * 2);
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines.len(), 6000);
        assert_eq!(lines[0], "-   1 a0");
        assert_eq!(lines[2999], "-3000 a2999");
        assert_eq!(lines[3000], "+   1 b0");
        assert_eq!(lines[5999], "+3000 b2999");
        let old_l: Vec<&str> = old.split_inclusive('\n').collect();
        let new_l: Vec<&str> = new.split_inclusive('\n').collect();
        assert_eq!(
            myers_runs(&old_l, &new_l, Instant::now() + DIFF_TIME),
            [(DiffTag::Delete, 3000), (DiffTag::Insert, 3000)]
        );
    }

    #[test]
    fn failures() {
        let (t, s) = session();
        write(&s, "f", "aXbXc");
        let e = edit(&s, "f", "Y", "Z").unwrap_err();
        assert_eq!(
            e.message,
            "Could not find the exact text in f. The old text must match exactly including all whitespace and newlines."
        );
        let e = edit(&s, "f", "X", "Z").unwrap_err();
        assert_eq!(
            e.message,
            "Found 2 occurrences of the text in f. The text must be unique. Please provide more context to make it unique."
        );
        let e = edit(&s, "f", "aX", "aX").unwrap_err();
        assert_eq!(
            e.message,
            "No changes made to f. The replacement produced identical content. This might indicate an issue with special characters or the text not existing as expected."
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
        assert_eq!(v["diff"], " 1 a\r\n-2 b\n+2 c");
    }
}
