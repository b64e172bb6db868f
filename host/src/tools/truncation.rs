//! Output limits shared by the tools, and the `truncation` object of the original
//! sidecar: `{content, truncated, truncatedBy: "lines"|"bytes"|null, totalLines,
//! totalBytes, outputLines, outputBytes, lastLinePartial, firstLineExceedsLimit,
//! maxLines, maxBytes}`.
//!
//! Head truncation keeps the first lines that fit in both limits (whichever is hit
//! first wins) and never cuts a line; if the first line alone is over the byte
//! limit the output is empty and `firstLineExceedsLimit` is set. Lines are counted
//! by splitting on `\n`, bytes are UTF-8 bytes, and a line costs its bytes plus one
//! for the `\n` that joins it to the previous one.

use std::borrow::Cow;

use serde::Serialize;

/// Line limit of read (and of ls's text).
pub const DEFAULT_MAX_LINES: usize = 2000;
/// Byte limit of every tool's text output: 50 KB.
pub const DEFAULT_MAX_BYTES: usize = 50 * 1024;
/// Longest grep line shown, in UTF-16 code units (JavaScript's string length).
pub const GREP_MAX_LINE_LENGTH: usize = 500;
/// "No line limit", as the original spelled it (JavaScript's `MAX_SAFE_INTEGER`).
pub const NO_LINE_LIMIT: usize = 9_007_199_254_740_991;

/// Which limit cut the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TruncatedBy {
    Lines,
    Bytes,
}

/// The `truncation` object (field names as in the original).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Truncation {
    /// The kept text.
    pub content: String,
    pub truncated: bool,
    pub truncated_by: Option<TruncatedBy>,
    pub total_lines: usize,
    pub total_bytes: usize,
    pub output_lines: usize,
    pub output_bytes: usize,
    /// Always false for head truncation (kept for the shape).
    pub last_line_partial: bool,
    pub first_line_exceeds_limit: bool,
    pub max_lines: usize,
    pub max_bytes: usize,
}

impl Truncation {
    /// True when anything was cut (the original included the object only then).
    pub fn cut(&self) -> bool {
        self.truncated || self.first_line_exceeds_limit
    }
}

/// Head-truncates `content` (split on `\n`).
pub fn truncate_head(content: &str, max_lines: usize, max_bytes: usize) -> Truncation {
    let lines: Vec<&str> = content.split('\n').collect();
    truncate_lines(&lines, max_lines, max_bytes)
}

/// Head-truncates the text made of `lines` joined with `\n`, without building it
/// first.
pub fn truncate_lines<S: AsRef<str>>(
    lines: &[S],
    max_lines: usize,
    max_bytes: usize,
) -> Truncation {
    let total_lines = lines.len();
    let total_bytes =
        lines.iter().map(|l| l.as_ref().len()).sum::<usize>() + total_lines.saturating_sub(1);
    let mut t = Truncation {
        content: String::new(),
        truncated: false,
        truncated_by: None,
        total_lines,
        total_bytes,
        output_lines: total_lines,
        output_bytes: total_bytes,
        last_line_partial: false,
        first_line_exceeds_limit: false,
        max_lines,
        max_bytes,
    };
    if total_lines <= max_lines && total_bytes <= max_bytes {
        t.content = join(lines.iter().map(AsRef::as_ref), total_bytes);
        return t;
    }
    t.truncated = true;
    let first = lines.first().map_or(0, |l| l.as_ref().len());
    if first > max_bytes {
        t.truncated_by = Some(TruncatedBy::Bytes);
        t.first_line_exceeds_limit = true;
        t.output_lines = 0;
        t.output_bytes = 0;
        return t;
    }
    let mut bytes = 0;
    let mut kept = 0;
    let mut by = TruncatedBy::Lines;
    for (i, line) in lines.iter().enumerate().take(max_lines) {
        let cost = line.as_ref().len() + usize::from(i > 0);
        if bytes + cost > max_bytes {
            by = TruncatedBy::Bytes;
            break;
        }
        bytes += cost;
        kept += 1;
    }
    if kept >= max_lines && bytes <= max_bytes {
        by = TruncatedBy::Lines;
    }
    t.truncated_by = Some(by);
    t.content = join(lines[..kept].iter().map(AsRef::as_ref), bytes);
    t.output_lines = kept;
    t.output_bytes = bytes;
    t
}

fn join<'a>(lines: impl Iterator<Item = &'a str>, cap: usize) -> String {
    let mut s = String::with_capacity(cap);
    for (i, l) in lines.enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(l);
    }
    s
}

/// Human-readable size as the original wrote it: `512B`, `50.0KB`, `1.5MB`.
pub fn format_size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes}B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1}KB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1}MB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Cuts a line to `max_units` UTF-16 code units (what JavaScript's `length` and
/// `slice` count, so a character outside the BMP counts two), adding
/// `... [truncated]`; says whether it cut. Where the original's cut fell inside a
/// surrogate pair (leaving half a character), this one stops before the pair.
pub fn truncate_line(line: &str, max_units: usize) -> (Cow<'_, str>, bool) {
    // Fast path: a line of at most max_units bytes has at most max_units units.
    if line.len() <= max_units {
        return (Cow::Borrowed(line), false);
    }
    let mut units = 0;
    for (i, c) in line.char_indices() {
        units += c.len_utf16();
        if units > max_units {
            return (Cow::Owned(format!("{}... [truncated]", &line[..i])), true);
        }
    }
    (Cow::Borrowed(line), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_truncation() {
        let t = truncate_head("a\nb", 2, 3);
        assert!(!t.truncated && !t.cut());
        assert_eq!(t.truncated_by, None);
        assert_eq!((t.total_lines, t.total_bytes), (2, 3));
        assert_eq!((t.output_lines, t.output_bytes), (2, 3));
        assert_eq!(t.content, "a\nb");
        let t = truncate_head("", 1, 1);
        assert_eq!(
            (t.total_lines, t.total_bytes, t.content.as_str()),
            (1, 0, "")
        );
    }

    #[test]
    fn by_lines_boundary() {
        let t = truncate_head("1\n2\n3", 2, 100);
        assert!(t.truncated);
        assert_eq!(t.truncated_by, Some(TruncatedBy::Lines));
        assert_eq!(t.content, "1\n2");
        assert_eq!((t.output_lines, t.output_bytes, t.total_lines), (2, 3, 3));
    }

    #[test]
    fn by_bytes_boundary() {
        // "aaa\nbbb" is 7 bytes: exactly at the limit nothing is cut.
        assert!(!truncate_head("aaa\nbbb", 10, 7).truncated);
        let t = truncate_head("aaa\nbbb", 10, 6);
        assert_eq!(t.truncated_by, Some(TruncatedBy::Bytes));
        assert_eq!(t.content, "aaa");
        assert_eq!((t.output_lines, t.output_bytes, t.total_bytes), (1, 3, 7));
        // Multibyte: counted in bytes, lines never split.
        let t = truncate_head("é\néé", 10, 4);
        assert_eq!(t.content, "é");
        assert_eq!(t.output_bytes, 2);
    }

    #[test]
    fn first_line_too_long() {
        let t = truncate_head("aaaa\nb", 10, 3);
        assert!(t.truncated && t.first_line_exceeds_limit);
        assert_eq!(t.truncated_by, Some(TruncatedBy::Bytes));
        assert_eq!(t.content, "");
        assert_eq!((t.output_lines, t.output_bytes), (0, 0));
    }

    #[test]
    fn lines_slice_matches_text() {
        let lines = ["x", "yy", "zzz"];
        assert_eq!(
            truncate_lines(&lines, 2, 100),
            truncate_head("x\nyy\nzzz", 2, 100)
        );
        assert_eq!(
            truncate_lines(&lines, 9, 5),
            truncate_head("x\nyy\nzzz", 9, 5)
        );
    }

    #[test]
    fn json_shape() {
        let v = serde_json::to_value(truncate_head("a\nb", 1, 100)).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        for k in [
            "content",
            "truncated",
            "truncatedBy",
            "totalLines",
            "totalBytes",
            "outputLines",
            "outputBytes",
            "lastLinePartial",
            "firstLineExceedsLimit",
            "maxLines",
            "maxBytes",
        ] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
        assert_eq!(keys.len(), 11);
        assert_eq!(v["truncatedBy"], "lines");
        let v = serde_json::to_value(truncate_head("a", 1, 100)).unwrap();
        assert!(v["truncatedBy"].is_null());
    }

    #[test]
    fn sizes_and_lines() {
        assert_eq!(format_size(1023), "1023B");
        assert_eq!(format_size(51200), "50.0KB");
        assert_eq!(format_size(1536 * 1024), "1.5MB");
        assert_eq!(truncate_line("abc", 3), (Cow::Borrowed("abc"), false));
        assert!(!truncate_line("ééé", 3).1);
        let (t, cut) = truncate_line("éééé", 3);
        assert!(cut);
        assert_eq!(t, "ééé... [truncated]");
        // UTF-16 units: an emoji is two.
        assert_eq!(truncate_line("😀a", 3), (Cow::Borrowed("😀a"), false));
        assert_eq!(truncate_line("😀😀", 4), (Cow::Borrowed("😀😀"), false));
        assert_eq!(truncate_line("😀😀😀", 4).0, "😀😀... [truncated]");
        // A cut inside a pair stops before it.
        assert_eq!(truncate_line("a😀😀", 2).0, "a... [truncated]");
        assert_eq!(truncate_line("a😀", 2).0, "a... [truncated]");
    }
}
