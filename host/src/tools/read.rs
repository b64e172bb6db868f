//! `/read`: a text file's lines (with offset/limit and head truncation), or an image
//! as base64.
//!
//! Request `{path, offset? (1-based line, default 1), limit? (lines)}`. Result:
//! - text: `{type: "text", content, totalLines, hasMore, truncation?}`;
//! - images (`.png .jpg .jpeg .gif .webp`, any case): `{type: "image", data (base64),
//!   mimeType}`, up to [`MAX_IMAGE_BYTES`].
//!
//! Lines are counted as the original counted them, by splitting the text on `\n`:
//! `totalLines` is the number of `\n` plus one, so `"a\nb\n"` has 3 lines (the last
//! one empty), an empty file 1, and offset 1 is always valid. The selected lines
//! (`offset` .. `offset + limit`, or to the end) are joined with `\n`, so a read of
//! the whole file is byte-exact. `offset` past the last line is refused: `Offset N is
//! beyond end of file (M lines total)`.
//!
//! The selection is head-truncated at 2000 lines or 50 KB, whichever comes first,
//! keeping whole lines; `truncation` (see [`super::truncation`]) then describes the
//! cut of the selected lines. If the first selected line alone is over 50 KB,
//! `content` is empty (and `truncation.firstLineExceedsLimit` is set). `content` is
//! the bare text, never with a notice appended: clients build their own from
//! `hasMore`, which is true when the output stops before the end of the file (cut, or
//! `limit` ends before the last line, counting the empty line after a final `\n`).
//!
//! Binary files (a NUL byte or invalid UTF-8 in the first 8 KB) are refused with a
//! clear error; invalid UTF-8 further in is shown as U+FFFD. The file is streamed:
//! memory stays bounded by the output limits whatever the file's size, and once
//! nothing more can be shown the rest is only counted.

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
    let start = offset as u64 - 1;
    let end = req
        .limit
        .filter(|&n| n > 0)
        .map(|n| start.saturating_add(n as u64));

    let mut scan = Scan::new(start, end, DEFAULT_MAX_LINES, DEFAULT_MAX_BYTES);
    scan.run(file, path)?;
    let total = scan.line_idx;
    if start >= total {
        return Err(ToolError::bad_request(format!(
            "Offset {offset} is beyond end of file ({total} lines total)"
        )));
    }

    // Empty when the first selected line alone was too long (nothing was kept).
    let content = String::from_utf8_lossy(&scan.out).into_owned();
    let has_more = scan.stopped.is_some() || end.is_some_and(|e| e < total);
    let mut result = json!({
        "type": "text",
        "totalLines": total,
        "hasMore": has_more,
    });
    if let Some(by) = scan.stopped {
        let sel_end = end.map_or(total, |e| e.min(total));
        let truncation = Truncation {
            content: content.clone(),
            truncated: true,
            truncated_by: Some(by),
            total_lines: (sel_end - start) as usize,
            total_bytes: (scan.sel_end.unwrap_or(scan.pos) - scan.sel_start) as usize,
            output_lines: scan.out_lines,
            output_bytes: content.len(),
            last_line_partial: false,
            first_line_exceeds_limit: scan.first_line_exceeds,
            max_lines: DEFAULT_MAX_LINES,
            max_bytes: DEFAULT_MAX_BYTES,
        };
        result["truncation"] = serde_json::to_value(truncation).expect("truncation serializes");
    }
    result["content"] = Value::String(content);
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

/// Streaming line scanner over the `\n`-separated lines of a file: counts them all,
/// keeps the selected ones that fit in the limits, and measures the selection.
struct Scan {
    /// First selected line (0-based) and the end of the selection (exclusive).
    start: u64,
    end: Option<u64>,
    max_lines: usize,
    max_bytes: usize,
    /// Index of the line being read (= `\n` seen so far; the total at the end).
    line_idx: u64,
    /// Bytes read so far.
    pos: u64,
    /// Where the selection starts, and where it ends when that is before the end of
    /// the file (the `\n` after its last line): its joined size is the difference.
    sel_start: u64,
    sel_end: Option<u64>,
    /// The current line while it may still be shown (at most `max_bytes + 1` bytes
    /// of it), and its full length.
    cur: Vec<u8>,
    cur_len: u64,
    /// The kept lines, joined with `\n`.
    out: Vec<u8>,
    out_lines: usize,
    stopped: Option<TruncatedBy>,
    first_line_exceeds: bool,
}

impl Scan {
    fn new(start: u64, end: Option<u64>, max_lines: usize, max_bytes: usize) -> Self {
        Scan {
            start,
            end,
            max_lines,
            max_bytes,
            line_idx: 0,
            pos: 0,
            sel_start: 0,
            sel_end: None,
            cur: Vec::new(),
            cur_len: 0,
            out: Vec::new(),
            out_lines: 0,
            stopped: None,
            first_line_exceeds: false,
        }
    }

    fn selected(&self, idx: u64) -> bool {
        idx >= self.start && self.end.is_none_or(|e| idx < e)
    }

    /// Nothing more can be kept, and where the selection ends is known (or is the end
    /// of the file): what is left only needs its `\n` counted.
    fn only_counting(&self) -> bool {
        match self.end {
            Some(e) => self.line_idx >= e,
            None => self.stopped.is_some(),
        }
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
            let mut done = 0;
            for piece in LineIter::new(b'\n', chunk) {
                if self.only_counting() {
                    break;
                }
                done += piece.len();
                if let Some(body) = piece.strip_suffix(b"\n") {
                    self.push(body);
                    self.end_line(true);
                } else {
                    self.push(piece);
                }
            }
            let rest = &chunk[done..];
            self.line_idx += rest.iter().filter(|&&b| b == b'\n').count() as u64;
            self.pos += rest.len() as u64;
            let n = chunk.len();
            reader.consume(n);
        }
        // The text after the last `\n` is a line too (empty when the file ends with
        // one, or is empty).
        self.end_line(false);
        Ok(())
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.stopped.is_none() && self.selected(self.line_idx) {
            let room = (self.max_bytes + 1).saturating_sub(self.cur.len());
            self.cur.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        self.cur_len += bytes.len() as u64;
        self.pos += bytes.len() as u64;
    }

    fn end_line(&mut self, terminated: bool) {
        let idx = self.line_idx;
        if self.selected(idx) && self.stopped.is_none() {
            let sep = usize::from(self.out_lines > 0);
            if self.out_lines >= self.max_lines {
                self.stopped = Some(TruncatedBy::Lines);
            } else if (self.out.len() + sep) as u64 + self.cur_len > self.max_bytes as u64 {
                self.stopped = Some(TruncatedBy::Bytes);
                self.first_line_exceeds = self.out_lines == 0;
            } else {
                if sep == 1 {
                    self.out.push(b'\n');
                }
                self.out.extend_from_slice(&self.cur);
                self.out_lines += 1;
            }
        }
        if self.end == Some(idx + 1) {
            self.sel_end = Some(self.pos);
        }
        self.line_idx += 1;
        self.pos += u64::from(terminated);
        if self.line_idx == self.start {
            self.sel_start = self.pos;
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

    /// What the original returned: `text.split("\n")`, sliced, joined and
    /// head-truncated (as a whole, in memory).
    fn model(text: &str, offset: usize, limit: Option<usize>) -> Value {
        let lines: Vec<&str> = text.split('\n').collect();
        let start = offset - 1;
        let end = limit.map_or(lines.len(), |l| (start + l).min(lines.len()));
        let t = crate::tools::truncation::truncate_head(
            &lines[start..end].join("\n"),
            DEFAULT_MAX_LINES,
            DEFAULT_MAX_BYTES,
        );
        let mut v = json!({
            "type": "text",
            "content": t.content,
            "totalLines": lines.len(),
            "hasMore": t.cut() || end < lines.len(),
        });
        if t.cut() {
            v["truncation"] = serde_json::to_value(&t).unwrap();
        }
        v
    }

    #[test]
    fn whole_file() {
        let (_t, s) = session();
        write(&s, "a.txt", "one\ntwo\nthree\n");
        let v = read(&s, "a.txt", None, None).unwrap();
        assert_eq!(
            v,
            json!({"type": "text", "content": "one\ntwo\nthree\n", "totalLines": 4, "hasMore": false})
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
        assert_eq!(v["totalLines"], 2);
    }

    #[test]
    fn lines_are_what_split_on_newline_gives() {
        let (_t, s) = session();
        write(&s, "e", "");
        let v = read(&s, "e", None, None).unwrap();
        assert_eq!(
            v,
            json!({"type": "text", "content": "", "totalLines": 1, "hasMore": false})
        );
        assert_eq!(
            read(&s, "e", Some(2), None).unwrap_err().message,
            "Offset 2 is beyond end of file (1 lines total)"
        );
        write(&s, "nl", "\n");
        assert_eq!(read(&s, "nl", None, None).unwrap()["totalLines"], 2);
        assert_eq!(read(&s, "nl", Some(2), None).unwrap()["content"], "");
        // Every offset/limit against the model, on texts with and without a final
        // newline, with empty lines and CRLF.
        for text in ["a\nb\n", "a\nb", "\n\nx\n\n", "one\r\ntwo\r\n", "solo"] {
            write(&s, "m", text);
            let total = text.split('\n').count();
            for offset in 1..=total {
                for limit in [None, Some(1), Some(2), Some(total)] {
                    let v = read(&s, "m", Some(offset as i64), limit.map(|l| l as i64)).unwrap();
                    assert_eq!(
                        v,
                        model(text, offset, limit),
                        "{text:?} offset {offset} limit {limit:?}"
                    );
                }
            }
            let e = read(&s, "m", Some(total as i64 + 1), None).unwrap_err();
            assert_eq!(
                e.message,
                format!(
                    "Offset {} is beyond end of file ({total} lines total)",
                    total + 1
                )
            );
        }
    }

    #[test]
    fn offset_and_limit() {
        let (_t, s) = session();
        let body: String = (1..=10).map(|i| format!("L{i}\n")).collect();
        write(&s, "f", &body);
        let v = read(&s, "f", Some(3), Some(2)).unwrap();
        assert_eq!(
            v,
            json!({"type": "text", "content": "L3\nL4", "totalLines": 11, "hasMore": true})
        );
        // The last real line: the empty line after the final newline is still ahead.
        let v = read(&s, "f", Some(9), Some(2)).unwrap();
        assert_eq!(v["content"], "L9\nL10");
        assert_eq!(v["hasMore"], true);
        // Through that empty line: the final newline, nothing more.
        let v = read(&s, "f", Some(9), Some(3)).unwrap();
        assert_eq!(v["content"], "L9\nL10\n");
        assert_eq!(v["hasMore"], false);
        let v = read(&s, "f", Some(10), None).unwrap();
        assert_eq!(v["content"], "L10\n");
        assert_eq!(read(&s, "f", Some(11), None).unwrap()["content"], "");
        // Non-positive limit means no limit (as the original).
        let v = read(&s, "f", Some(10), Some(0)).unwrap();
        assert_eq!(v["content"], "L10\n");
        assert_eq!(v["hasMore"], false);
        // Errors.
        for bad in [0, -1] {
            assert_eq!(
                read(&s, "f", Some(bad), None).unwrap_err().message,
                "Offset must be >= 1"
            );
        }
        let e = read(&s, "f", Some(12), None).unwrap_err();
        assert_eq!(
            e.message,
            "Offset 12 is beyond end of file (11 lines total)"
        );
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn line_limit_boundary() {
        let (_t, s) = session();
        // 2000 lines without a final newline: exactly at the limit.
        let body = (1..=2000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        write(&s, "exact", &body);
        let v = read(&s, "exact", None, None).unwrap();
        assert_eq!(v["hasMore"], false);
        assert!(v.get("truncation").is_none());
        assert_eq!(v["content"], body);

        // With the final newline that is 2001 lines: the empty last one is cut.
        let body = format!("{body}\n");
        write(&s, "over", &body);
        let v = read(&s, "over", None, None).unwrap();
        assert_eq!(v["hasMore"], true);
        assert_eq!(v["totalLines"], 2001);
        let kept = body.trim_end();
        assert_eq!(v["content"], kept);
        let t = &v["truncation"];
        assert_eq!(t["truncatedBy"], "lines");
        assert_eq!(t["totalLines"], 2001);
        assert_eq!(t["outputLines"], 2000);
        assert_eq!(t["maxLines"], 2000);
        assert_eq!(t["maxBytes"], 51200);
        assert_eq!(t["totalBytes"], body.len());
        assert_eq!(t["content"], kept);
        assert_eq!(t["outputBytes"], kept.len());
        assert_eq!(t["firstLineExceedsLimit"], false);
        // Continuing after the kept lines.
        let v = read(&s, "over", Some(2001), None).unwrap();
        assert_eq!(
            v,
            json!({"type": "text", "content": "", "totalLines": 2001, "hasMore": false})
        );
        // A limit past the cut: the truncation describes the limited selection.
        let more: String = (1..=2100).map(|i| format!("{i}\n")).collect();
        write(&s, "more", &more);
        let v = read(&s, "more", Some(2), Some(2050)).unwrap();
        assert_eq!(v, model(&more, 2, Some(2050)));
        let selection: Vec<&str> = more.split('\n').skip(1).take(2050).collect();
        assert_eq!(v["hasMore"], true);
        let t = &v["truncation"];
        assert_eq!(t["truncatedBy"], "lines");
        assert_eq!(t["totalLines"], 2050);
        assert_eq!(t["totalBytes"], selection.join("\n").len());
        assert_eq!(t["outputLines"], 2000);
        assert_eq!(
            v["content"],
            (2..=2001)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
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
        assert_eq!(v["totalLines"], 513);
        // One more line: cut by bytes, whole lines kept, no notice in the content.
        let over = format!("{body}{line}\n");
        write(&s, "over", &over);
        let v = read(&s, "over", None, None).unwrap();
        let t = &v["truncation"];
        assert_eq!(t["truncatedBy"], "bytes");
        assert_eq!(t["outputLines"], 512);
        assert_eq!(t["outputBytes"], 51199);
        assert_eq!(t["totalLines"], 514);
        assert_eq!(t["totalBytes"], over.len());
        assert_eq!(v["content"], body.trim_end());
        assert_eq!(v["hasMore"], true);
        // From an offset: the truncation measures the selection, not the file.
        let longer = format!("{line}\n").repeat(515);
        write(&s, "longer", &longer);
        let v = read(&s, "longer", Some(3), None).unwrap();
        let t = &v["truncation"];
        assert_eq!(t["totalBytes"], longer.len() - 200);
        assert_eq!(t["totalLines"], 514);
        assert_eq!(t["outputLines"], 512);
        assert_eq!(v["totalLines"], 516);
        assert_eq!(v["content"], format!("{line}\n").repeat(511) + &line);
        // A first line over the limit: empty content, the rest readable.
        let body = "é".repeat(30000) + "\n" + "b";
        write(&s, "mb", &body);
        let v = read(&s, "mb", None, None).unwrap();
        assert_eq!(v["content"], "");
        assert_eq!(v["hasMore"], true);
        assert_eq!(v["totalLines"], 2);
        let t = &v["truncation"];
        assert_eq!(t["firstLineExceedsLimit"], true);
        assert_eq!(t["truncatedBy"], "bytes");
        assert_eq!(t["content"], "");
        assert_eq!(
            (t["outputLines"].clone(), t["outputBytes"].clone()),
            (json!(0), json!(0))
        );
        assert_eq!(t["totalBytes"], body.len());
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
        // Many lines after the cut are counted, in every chunk.
        let body = "z\n".repeat(300_000);
        write(&s, "many", &body);
        let v = read(&s, "many", Some(5), Some(3)).unwrap();
        assert_eq!(v["content"], "z\nz\nz");
        assert_eq!(v["totalLines"], 300_001);
        let v = read(&s, "many", None, None).unwrap();
        assert_eq!(v["totalLines"], 300_001);
        assert_eq!(v["truncation"]["totalBytes"], body.len());
    }

    /// Selections that start, end or are cut in later 64 KB chunks, against the
    /// in-memory model.
    #[test]
    fn streaming_matches_the_model() {
        let (_t, s) = session();
        let mut body = String::new();
        for i in 0..40_000 {
            body.push_str(&"w".repeat(i % 37));
            body.push('\n');
        }
        write(&s, "f", &body);
        let total = body.split('\n').count();
        for (offset, limit) in [
            (1, None),
            (1, Some(3000)),
            (1500, Some(400)),
            (20_000, None),
            (20_000, Some(2500)),
            (39_990, Some(5)),
            (39_999, Some(2)),
            (total, None),
            (total, Some(1)),
        ] {
            let v = read(&s, "f", Some(offset as i64), limit.map(|l: usize| l as i64)).unwrap();
            assert_eq!(
                v,
                model(&body, offset, limit),
                "offset {offset} limit {limit:?}"
            );
        }
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
