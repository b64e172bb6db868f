//! `/read`: a text file's lines (with offset/limit and head truncation), or an image
//! as base64.
//!
//! Request `{path, offset? (1-based line, default 1), limit? (lines)}`. Result:
//! - text: `{type: "text", content, totalLines, hasMore, truncation?}`; the output is
//!   cut at 2000 lines or 50 KB, whichever comes first, keeping whole lines, and
//!   `truncation` (see [`super::truncation`]) describes the cut of the selected
//!   lines when there was one;
//! - images (`.png .jpg .jpeg .gif .webp`, any case): `{type: "image", data (base64),
//!   mimeType}`, up to [`MAX_IMAGE_BYTES`].
//!
//! Lines are what `\n` separates; a final `\n` ends the last line rather than
//! starting an empty one (so `"a\nb\n"` has 2 lines, an empty file 0, and offset 1
//! is always valid). When the selection reaches the end of the file, `content` keeps
//! the file's final newline, so a whole read is byte-exact.
//!
//! When the output does not reach the end of the file, one notice is appended to
//! `content` after a blank line (as the agent tools of the original do):
//! - `[Showing lines X-Y of N. Use offset=Z to continue.]` (2000-line limit),
//! - `[Showing lines X-Y of N (50.0KB limit). Use offset=Z to continue.]`,
//! - `[K more lines in file. Use offset=Z to continue.]` (the caller's `limit`),
//! - `[Line X is S, exceeds 50.0KB limit. Use bash: sed -n 'Xp' PATH | head -c 51200]`
//!   when the first selected line alone is too long (no line is returned then).
//!
//! Binary files (a NUL byte or invalid UTF-8 in the first 8 KB) are refused with a
//! clear error; invalid UTF-8 further in is shown as U+FFFD. The file is streamed:
//! memory stays bounded by the output limits whatever the file's size.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};

use base64::Engine;
use grep_searcher::LineIter;
use serde::Deserialize;
use serde_json::{json, Value};

use super::truncation::{
    format_size, TruncatedBy, Truncation, DEFAULT_MAX_BYTES, DEFAULT_MAX_LINES,
};
use super::{num, required};
use crate::workspace::{Session, ToolError};

/// Largest image returned (base64 makes it a third larger).
pub const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;
/// How much of the head is checked for binary content.
const HEAD_CHECK: usize = 8192;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadRequest {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default, deserialize_with = "num::opt_i64")]
    pub offset: Option<i64>,
    #[serde(default, deserialize_with = "num::opt_i64")]
    pub limit: Option<i64>,
}

/// The MIME type for an image extension (case-insensitive), as the original knew them.
pub fn image_mime(path: &str) -> Option<&'static str> {
    let ext = std::path::Path::new(path).extension()?.to_str()?;
    match ext.to_ascii_lowercase().as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

pub fn run(session: &Session, req: ReadRequest) -> Result<Value, ToolError> {
    let path = required(&req.path, "path")?;
    let file = session.open_read(path)?;
    if let Some(mime) = image_mime(path) {
        return read_image(file, path, mime);
    }
    let offset = req.offset.unwrap_or(1);
    if offset < 1 {
        return Err(ToolError::bad_request("Offset must be >= 1"));
    }
    let offset = offset as u64;
    let start = offset - 1;
    let end = req
        .limit
        .filter(|&n| n > 0)
        .map(|n| start.saturating_add(n as u64));

    let mut scan = Scan::new(start, end, DEFAULT_MAX_LINES, DEFAULT_MAX_BYTES);
    scan.run(file, path)?;
    let total = scan.line_idx;

    if start > 0 && start >= total {
        return Err(ToolError::bad_request(format!(
            "Offset {offset} is beyond end of file ({total} lines total)"
        )));
    }

    let truncated = scan.stopped.is_some();
    let reaches_eof = end.is_none_or(|e| e >= total);
    let keeps_final_newline = reaches_eof && scan.last_terminated && scan.sel_lines > 0;
    let mut text = String::from_utf8_lossy(&scan.out).into_owned();
    if !truncated && keeps_final_newline {
        text.push('\n');
    }
    let has_more = truncated || !reaches_eof;

    let last_shown = offset + scan.out_lines as u64 - u64::from(scan.out_lines > 0);
    let next = last_shown + 1;
    let notice = if scan.first_line_exceeds {
        Some(format!(
            "[Line {offset} is {}, exceeds {} limit. Use bash: sed -n '{offset}p' {} | head -c {DEFAULT_MAX_BYTES}]",
            format_size(scan.first_line_len as usize),
            format_size(DEFAULT_MAX_BYTES),
            shell_quote(path),
        ))
    } else {
        match scan.stopped {
            Some(TruncatedBy::Lines) => Some(format!(
                "[Showing lines {offset}-{last_shown} of {total}. Use offset={next} to continue.]"
            )),
            Some(TruncatedBy::Bytes) => Some(format!(
                "[Showing lines {offset}-{last_shown} of {total} ({} limit). Use offset={next} to continue.]",
                format_size(DEFAULT_MAX_BYTES)
            )),
            None if has_more => Some(format!(
                "[{} more lines in file. Use offset={next} to continue.]",
                total - last_shown
            )),
            None => None,
        }
    };

    let truncation = truncated.then(|| Truncation {
        content: text.clone(),
        truncated: true,
        truncated_by: scan.stopped,
        total_lines: scan.sel_lines as usize,
        total_bytes: (scan.sel_bytes + u64::from(keeps_final_newline)) as usize,
        output_lines: scan.out_lines,
        output_bytes: text.len(),
        last_line_partial: false,
        first_line_exceeds_limit: scan.first_line_exceeds,
        max_lines: DEFAULT_MAX_LINES,
        max_bytes: DEFAULT_MAX_BYTES,
    });

    let content = match notice {
        Some(n) if text.is_empty() => n,
        Some(n) => format!("{text}\n\n{n}"),
        None => text,
    };
    let mut result = json!({
        "type": "text",
        "content": content,
        "totalLines": total,
        "hasMore": has_more,
    });
    if let Some(t) = truncation {
        result["truncation"] = serde_json::to_value(t).expect("truncation serializes");
    }
    Ok(result)
}

fn read_image(file: File, path: &str, mime: &str) -> Result<Value, ToolError> {
    let len = file
        .metadata()
        .map_err(|e| ToolError::from_io(&e, path))?
        .len();
    let too_large = |len: u64| {
        ToolError::bad_request(format!(
            "Image too large: {path} is {}; the limit is {}",
            format_size(len as usize),
            format_size(MAX_IMAGE_BYTES as usize)
        ))
    };
    if len > MAX_IMAGE_BYTES {
        return Err(too_large(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ToolError::from_io(&e, path))?;
    if buf.len() as u64 > MAX_IMAGE_BYTES {
        return Err(too_large(buf.len() as u64));
    }
    Ok(json!({
        "type": "image",
        "data": base64::engine::general_purpose::STANDARD.encode(&buf),
        "mimeType": mime,
    }))
}

/// Quotes a path for the shell hint in a notice.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Streaming line scanner: counts every line, keeps the selected ones that fit.
struct Scan {
    start: u64,
    end: Option<u64>,
    max_lines: usize,
    max_bytes: usize,
    /// Index of the line being scanned (= lines seen so far).
    line_idx: u64,
    /// Kept bytes of the current line (at most max_bytes + 1).
    cur: Vec<u8>,
    cur_len: u64,
    last_terminated: bool,
    sel_lines: u64,
    /// Bytes of the selected lines joined with `\n` (no final newline).
    sel_bytes: u64,
    out: Vec<u8>,
    out_lines: usize,
    stopped: Option<TruncatedBy>,
    first_line_exceeds: bool,
    first_line_len: u64,
}

impl Scan {
    fn new(start: u64, end: Option<u64>, max_lines: usize, max_bytes: usize) -> Self {
        Scan {
            start,
            end,
            max_lines,
            max_bytes,
            line_idx: 0,
            cur: Vec::new(),
            cur_len: 0,
            last_terminated: false,
            sel_lines: 0,
            sel_bytes: 0,
            out: Vec::new(),
            out_lines: 0,
            stopped: None,
            first_line_exceeds: false,
            first_line_len: 0,
        }
    }

    fn selected(&self, idx: u64) -> bool {
        idx >= self.start && self.end.is_none_or(|e| idx < e)
    }

    fn run(&mut self, file: File, path: &str) -> Result<(), ToolError> {
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut head_checked = false;
        loop {
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ToolError::from_io(&e, path)),
            };
            if chunk.is_empty() {
                break;
            }
            if !head_checked {
                check_head(&chunk[..chunk.len().min(HEAD_CHECK)], path)?;
                head_checked = true;
            }
            for piece in LineIter::new(b'\n', chunk) {
                if let Some(body) = piece.strip_suffix(b"\n") {
                    self.push(body);
                    self.end_line(true);
                } else {
                    self.push(piece);
                }
            }
            let n = chunk.len();
            reader.consume(n);
        }
        if self.cur_len > 0 {
            self.end_line(false);
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.stopped.is_none() && self.selected(self.line_idx) {
            let room = (self.max_bytes + 1).saturating_sub(self.cur.len());
            self.cur.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        self.cur_len += bytes.len() as u64;
    }

    fn end_line(&mut self, terminated: bool) {
        let idx = self.line_idx;
        self.line_idx += 1;
        self.last_terminated = terminated;
        if self.selected(idx) {
            let sep = u64::from(self.sel_lines > 0);
            self.sel_lines += 1;
            self.sel_bytes += self.cur_len + sep;
            if self.stopped.is_none() {
                if self.out_lines >= self.max_lines {
                    self.stopped = Some(TruncatedBy::Lines);
                } else if self.out.len() as u64 + sep + self.cur_len > self.max_bytes as u64 {
                    self.stopped = Some(TruncatedBy::Bytes);
                    if self.out_lines == 0 {
                        self.first_line_exceeds = true;
                        self.first_line_len = self.cur_len;
                    }
                } else {
                    if sep == 1 {
                        self.out.push(b'\n');
                    }
                    self.out.extend_from_slice(&self.cur);
                    self.out_lines += 1;
                }
            }
        }
        self.cur.clear();
        self.cur_len = 0;
    }
}

fn check_head(head: &[u8], path: &str) -> Result<(), ToolError> {
    let binary = |why: &str| {
        ToolError::bad_request(format!(
            "Cannot read {path}: it looks like a binary file ({why}). Only text files and images (.png .jpg .jpeg .gif .webp) can be read; use bash to inspect other files."
        ))
    };
    if head.contains(&0) {
        return Err(binary("it contains NUL bytes"));
    }
    if let Err(e) = std::str::from_utf8(head) {
        // A character cut by the end of the head is fine.
        if e.error_len().is_some() {
            return Err(binary("it is not valid UTF-8 text"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::testutil::{session, write};
    use crate::workspace::ToolErrorKind;

    fn read(
        s: &Session,
        path: &str,
        offset: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Value, ToolError> {
        run(
            s,
            ReadRequest {
                path: Some(path.into()),
                offset,
                limit,
                ..Default::default()
            },
        )
    }

    #[test]
    fn whole_file() {
        let (_t, s) = session();
        write(&s, "a.txt", "one\ntwo\nthree\n");
        let v = read(&s, "a.txt", None, None).unwrap();
        assert_eq!(
            v,
            json!({"type": "text", "content": "one\ntwo\nthree\n", "totalLines": 3, "hasMore": false})
        );
        write(&s, "b.txt", "x\r\ny");
        let v = read(&s, "b.txt", None, None).unwrap();
        assert_eq!(v["content"], "x\r\ny");
        assert_eq!(v["totalLines"], 2);
        // UTF-8, including a multibyte character across the 8 KB head boundary.
        let mut text = "a".repeat(HEAD_CHECK - 1);
        text.push_str("é日本\n");
        write(&s, "u.txt", &text);
        let v = read(&s, "u.txt", None, None).unwrap();
        assert_eq!(v["content"], text);
    }

    #[test]
    fn empty_file() {
        let (_t, s) = session();
        write(&s, "e", "");
        let v = read(&s, "e", None, None).unwrap();
        assert_eq!(
            v,
            json!({"type": "text", "content": "", "totalLines": 0, "hasMore": false})
        );
        assert_eq!(
            read(&s, "e", Some(2), None).unwrap_err().message,
            "Offset 2 is beyond end of file (0 lines total)"
        );
    }

    #[test]
    fn offset_and_limit() {
        let (_t, s) = session();
        let body: String = (1..=10).map(|i| format!("L{i}\n")).collect();
        write(&s, "f", &body);
        let v = read(&s, "f", Some(3), Some(2)).unwrap();
        assert_eq!(
            v["content"],
            "L3\nL4\n\n[6 more lines in file. Use offset=5 to continue.]"
        );
        assert_eq!(v["hasMore"], true);
        assert_eq!(v["totalLines"], 10);
        assert!(v.get("truncation").is_none());
        // Limit reaching the end exactly: no notice, final newline kept.
        let v = read(&s, "f", Some(9), Some(2)).unwrap();
        assert_eq!(v["content"], "L9\nL10\n");
        assert_eq!(v["hasMore"], false);
        let v = read(&s, "f", Some(10), None).unwrap();
        assert_eq!(v["content"], "L10\n");
        // Non-positive limit means no limit (as the original).
        let v = read(&s, "f", Some(10), Some(0)).unwrap();
        assert_eq!(v["content"], "L10\n");
        // Errors.
        for bad in [0, -1] {
            assert_eq!(
                read(&s, "f", Some(bad), None).unwrap_err().message,
                "Offset must be >= 1"
            );
        }
        let e = read(&s, "f", Some(11), None).unwrap_err();
        assert_eq!(
            e.message,
            "Offset 11 is beyond end of file (10 lines total)"
        );
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn line_limit_boundary() {
        let (_t, s) = session();
        let body: String = (1..=2000).map(|i| format!("{i}\n")).collect();
        write(&s, "exact", &body);
        let v = read(&s, "exact", None, None).unwrap();
        assert_eq!(v["hasMore"], false);
        assert!(v.get("truncation").is_none());
        assert_eq!(v["content"], body);

        let body: String = (1..=2001).map(|i| format!("{i}\n")).collect();
        write(&s, "over", &body);
        let v = read(&s, "over", None, None).unwrap();
        assert_eq!(v["hasMore"], true);
        let t = &v["truncation"];
        assert_eq!(t["truncatedBy"], "lines");
        assert_eq!(t["totalLines"], 2001);
        assert_eq!(t["outputLines"], 2000);
        assert_eq!(t["maxLines"], 2000);
        assert_eq!(t["maxBytes"], 51200);
        assert_eq!(t["totalBytes"], body.len());
        let kept: String = (1..=2000).map(|i| format!("{i}\n")).collect();
        let kept = kept.trim_end();
        assert_eq!(t["content"], kept);
        assert_eq!(t["outputBytes"], kept.len());
        assert_eq!(
            v["content"],
            format!("{kept}\n\n[Showing lines 1-2000 of 2001. Use offset=2001 to continue.]")
        );
        // Continue from the notice.
        let v = read(&s, "over", Some(2001), None).unwrap();
        assert_eq!(v["content"], "2001\n");
    }

    #[test]
    fn byte_limit_boundary() {
        let (_t, s) = session();
        // 512 lines of 99 chars + '\n' = 51200 bytes: fits exactly.
        let line = "x".repeat(99);
        let body = format!("{line}\n").repeat(512);
        assert_eq!(body.len(), 51200);
        write(&s, "fits", &body);
        let v = read(&s, "fits", None, None).unwrap();
        assert!(v.get("truncation").is_none(), "{}", v["truncation"]);
        assert_eq!(v["content"], body);
        // One more line: cut by bytes, whole lines kept.
        write(&s, "over", format!("{body}{line}\n"));
        let v = read(&s, "over", None, None).unwrap();
        let t = &v["truncation"];
        assert_eq!(t["truncatedBy"], "bytes");
        assert_eq!(t["outputLines"], 512);
        assert_eq!(t["outputBytes"], 51199);
        assert_eq!(
            v["content"],
            format!(
                "{}\n\n[Showing lines 1-512 of 513 (50.0KB limit). Use offset=513 to continue.]",
                body.trim_end()
            )
        );
        // Multibyte lines are never split.
        let body = "é".repeat(30000) + "\n" + "b";
        write(&s, "mb", &body);
        let v = read(&s, "mb", None, None).unwrap();
        assert_eq!(v["truncation"]["firstLineExceedsLimit"], true);
        assert_eq!(v["truncation"]["content"], "");
        assert_eq!(v["truncation"]["outputLines"], 0);
        assert_eq!(
            v["content"],
            "[Line 1 is 58.6KB, exceeds 50.0KB limit. Use bash: sed -n '1p' mb | head -c 51200]"
        );
        assert_eq!(v["hasMore"], true);
        let v = read(&s, "mb", Some(2), None).unwrap();
        assert_eq!(v["content"], "b");
    }

    #[test]
    fn huge_single_line_streams() {
        let (_t, s) = session();
        write(&s, "big", "y".repeat(5 << 20));
        let v = read(&s, "big", None, None).unwrap();
        assert_eq!(v["truncation"]["totalBytes"], 5 << 20);
        assert_eq!(v["totalLines"], 1);
    }

    #[test]
    fn images() {
        let (_t, s) = session();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0rest";
        write(&s, "p.PNG", png);
        let v = read(&s, "p.PNG", Some(99), None).unwrap();
        assert_eq!(v["type"], "image");
        assert_eq!(v["mimeType"], "image/png");
        let data = base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(data, png);
        assert_eq!(image_mime("x.jpeg"), Some("image/jpeg"));
        assert_eq!(image_mime("x.jpg"), Some("image/jpeg"));
        assert_eq!(image_mime("x.gif"), Some("image/gif"));
        assert_eq!(image_mime("x.webp"), Some("image/webp"));
        assert_eq!(image_mime("x.svg"), None);
        assert_eq!(image_mime("png"), None);
    }

    #[test]
    fn binary_files() {
        let (_t, s) = session();
        write(&s, "nul.bin", b"abc\0def");
        let e = read(&s, "nul.bin", None, None).unwrap_err();
        assert!(e.message.contains("binary"), "{}", e.message);
        assert!(e.message.contains("NUL"));
        write(&s, "latin1.txt", b"caf\xe9 au lait");
        let e = read(&s, "latin1.txt", None, None).unwrap_err();
        assert!(e.message.contains("not valid UTF-8"), "{}", e.message);
        // Invalid bytes past the head are replaced, not refused.
        let mut body = vec![b'a'; HEAD_CHECK + 10];
        body.push(0xff);
        write(&s, "late", &body);
        let v = read(&s, "late", None, None).unwrap();
        assert!(v["content"].as_str().unwrap().ends_with('\u{fffd}'));
    }

    #[test]
    fn errors_and_confinement() {
        let (t, s) = session();
        let e = read(&s, "missing.txt", None, None).unwrap_err();
        assert_eq!(e.kind, ToolErrorKind::NotFound);
        assert_eq!(e.status(), 400);
        assert!(e.message.contains("missing.txt"));
        assert_eq!(
            run(&s, ReadRequest::default()).unwrap_err().message,
            "Missing or invalid path"
        );
        std::fs::create_dir(s.dir().join("d")).unwrap();
        assert!(read(&s, "d", None, None)
            .unwrap_err()
            .message
            .contains("Is a directory"));
        std::os::unix::fs::symlink("/etc/passwd", s.dir().join("pw")).unwrap();
        let e = read(&s, "pw", None, None).unwrap_err();
        assert_eq!(e.kind, ToolErrorKind::Forbidden);
        assert!(read(&s, "/etc/passwd", None, None).is_err());
        write(&s, "../../outside", "secret");
        assert!(t.path().join("outside").exists());
        assert!(read(&s, "../../outside", None, None).is_err());
        std::os::unix::fs::symlink(t.path(), s.dir().join("up")).unwrap();
        assert_eq!(
            read(&s, "up/outside", None, None).unwrap_err().kind,
            ToolErrorKind::Forbidden
        );
    }

    #[test]
    fn request_parsing() {
        let r: ReadRequest = serde_json::from_str(
            r#"{"sessionId":"s","path":"a","offset":2,"limit":3.0,"extra":1}"#,
        )
        .unwrap();
        assert_eq!(r.session_id.as_deref(), Some("s"));
        assert_eq!((r.offset, r.limit), (Some(2), Some(3)));
        assert!(serde_json::from_str::<ReadRequest>(r#"{"path":5}"#).is_err());
        assert!(serde_json::from_str::<ReadRequest>(r#"{"path":"a","offset":"1"}"#).is_err());
        let r: ReadRequest = serde_json::from_str("{}").unwrap();
        assert!(r.path.is_none());
    }
}
