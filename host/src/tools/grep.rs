//! `/grep`: lines matching a regex (or a literal) in a file or a tree.
//!
//! Request `{pattern, path? (default "."), glob?, ignoreCase?, literal?, context?
//! (default 0), limit? (default 100 matches)}`; result `{content, details?:
//! {truncation?, matchLimitReached?, linesTruncated?}}`.
//!
//! Lines of `content`, as in the original: `path:LINE: text` for a match,
//! `path-LINE- text` for a context line. Paths are relative to the searched
//! directory (or, when `path` is a file, relative to the session directory).
//! Context groups that overlap or touch are merged (no line is printed twice) and
//! `--` separates groups that are not adjacent, including groups of different
//! files; without context there are no separators. Files come in path order
//! (component-wise), lines in file order, so the output is deterministic whatever
//! the parallel search did.
//!
//! Limits and notices (appended after a blank line, joined with `. ` in one pair of
//! brackets, in the original's words):
//! - at most `limit` matches: `[N matches limit reached. Use limit=2N for more, or
//!   refine pattern]` and `matchLimitReached: N` when more matches exist (the
//!   first `limit` in path order are shown, with their trailing context);
//! - lines longer than 500 characters (UTF-16 code units, as JavaScript counts
//!   them) are cut with `... [truncated]`: `Some lines truncated to 500 chars. Use
//!   read tool to see full lines` and `linesTruncated: true`;
//! - the whole text is cut at 50 KB, keeping whole lines: `50KB limit reached` and
//!   the `truncation` object.
//!
//! `"No matches found"` when nothing matched. `pattern` is trimmed (as the original
//! did; blank is `Missing or invalid pattern`), then used as a Rust regex (the
//! `regex` crate's syntax, as ripgrep), or as a plain string with `literal`; `$`
//! also matches before a `\r\n` (CRLF files), and the `\r` is not shown. `glob`
//! filters files like `rg --glob` (without `/` it matches names at any depth, with
//! `/` paths from the searched directory, a leading `!` excludes); it does not apply
//! when `path` is a file. `context` is capped at [`MAX_CONTEXT`].
//!
//! Search: `ignore`'s parallel walker (see the `walk` module: hidden files
//! searched, `.gitignore`/`.ignore` honoured, `.git` skipped, symlinks never
//! followed) with one `grep-searcher` per thread; every file is opened beneath the
//! pinned start directory with `openat2`. Binary files (a NUL byte) are skipped
//! entirely. Once enough files are known to fill the output, files that sort after
//! them are no longer searched.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use grep_matcher::LineTerminator;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::overrides::OverrideBuilder;
use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkState};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::truncation::{
    truncate_head, truncate_line, DEFAULT_MAX_BYTES, GREP_MAX_LINE_LENGTH, NO_LINE_LIMIT,
};
use super::{js_trim, limit_or, num, path_or_dot, required, walk};
use crate::workspace::{Session, ToolError, WalkRoot};

/// Matches shown when the request gives no limit.
pub const DEFAULT_GREP_LIMIT: usize = 100;
/// Largest `context` honoured (more could not fit in 50 KB anyway).
pub const MAX_CONTEXT: usize = 1000;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrepRequest {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub glob: Option<String>,
    #[serde(default)]
    pub ignore_case: Option<bool>,
    #[serde(default)]
    pub literal: Option<bool>,
    #[serde(default, deserialize_with = "num::opt_i64")]
    pub context: Option<i64>,
    #[serde(default, deserialize_with = "num::opt_i64")]
    pub limit: Option<i64>,
}

pub fn run(session: &Session, req: GrepRequest) -> Result<Value, ToolError> {
    let pattern = js_trim(required(&req.pattern, "pattern")?);
    let path = path_or_dot(&req.path);
    let limit = limit_or(req.limit, DEFAULT_GREP_LIMIT);
    let context = req.context.unwrap_or(0).clamp(0, MAX_CONTEXT as i64) as usize;
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(req.ignore_case.unwrap_or(false))
        .fixed_strings(req.literal.unwrap_or(false))
        // Multi-line mode, as ripgrep: the searcher hands the matcher a line *with*
        // its terminator, so without it `$` would only match at the end of a last
        // line that has no `\n` (`foo$` missed "foo\n").
        .multi_line(true)
        // Sets the line terminator too (CRLF: lines end at `\n`, `$` matches before
        // `\r\n`); the searcher must use the same one, or the fast candidate-line
        // search (inner literals) is lost.
        .crlf(true)
        .build(pattern)
        .map_err(|e| {
            // grep-regex reports the pattern as it wrapped it (`(?:...)`); the plain
            // parser's message shows the caller's own pattern.
            let message = match regex::Regex::new(pattern) {
                Err(plain) if !req.literal.unwrap_or(false) => plain.to_string(),
                _ => e.to_string(),
            };
            ToolError::bad_request(format!("Invalid regex pattern: {message}"))
        })?;
    let searcher = SearcherBuilder::new()
        .line_terminator(LineTerminator::crlf())
        .line_number(true)
        .before_context(context)
        .after_context(context)
        .binary_detection(BinaryDetection::quit(0))
        .max_matches(Some(limit as u64 + 1))
        .build();
    let root = session.walk_root(path)?;
    let state = State::new(limit);

    if root.is_dir() {
        let mut walker = walk::builder(session, &root);
        if let Some(glob) = req.glob.as_deref().filter(|g| !js_trim(g).is_empty()) {
            let mut ob = OverrideBuilder::new(root.path());
            ob.add(glob)
                .map_err(|e| ToolError::bad_request(format!("Invalid glob: {e}")))?;
            let ov = ob
                .build()
                .map_err(|e| ToolError::bad_request(format!("Invalid glob: {e}")))?;
            walker.overrides(ov);
        }
        let mut builder = Workers {
            root: &root,
            matcher: &matcher,
            searcher: &searcher,
            state: &state,
        };
        walker.build_parallel().visit(&mut builder);
    } else {
        let display = root.rel().to_string_lossy().into_owned();
        let file = root.file().map_err(|e| ToolError::from_io(&e, path))?;
        let mut searcher = searcher.clone();
        if let Some(hits) = search_file(&mut searcher, &matcher, &file, &display) {
            state.insert(root.rel().to_path_buf(), hits);
        }
    }

    Ok(state.finish(context))
}

/// One output line of a file.
#[derive(Debug)]
enum Line {
    Match {
        number: u64,
        text: String,
        cut: bool,
    },
    Context {
        number: u64,
        text: String,
        cut: bool,
    },
    Break,
}

/// What one file contributed.
#[derive(Debug)]
struct FileHits {
    display: String,
    lines: Vec<Line>,
    matches: usize,
    /// Bytes these lines take in the output (without separators).
    bytes: usize,
}

/// Collects one file's lines; stops early once they alone pass 50 KB.
struct Collector {
    display_len: usize,
    hits: Vec<Line>,
    matches: usize,
    bytes: usize,
    binary: bool,
}

impl Collector {
    fn push(&mut self, is_match: bool, number: u64, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = String::from_utf8_lossy(raw);
        let (text, cut) = truncate_line(&text, GREP_MAX_LINE_LENGTH);
        let text = text.into_owned();
        // "path:N: text\n"
        self.bytes += self.display_len + digits(number) + 3 + text.len() + 1;
        self.hits.push(if is_match {
            Line::Match { number, text, cut }
        } else {
            Line::Context { number, text, cut }
        });
    }

    fn room(&self) -> bool {
        self.bytes <= DEFAULT_MAX_BYTES
    }
}

fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

impl Sink for Collector {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let first = mat.line_number().unwrap_or(0);
        for (number, line) in (first..).zip(mat.lines()) {
            self.push(true, number, line);
        }
        self.matches += 1;
        Ok(self.room())
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, io::Error> {
        self.push(false, ctx.line_number().unwrap_or(0), ctx.bytes());
        Ok(self.room())
    }

    fn context_break(&mut self, _: &Searcher) -> Result<bool, io::Error> {
        if !self.hits.is_empty() {
            self.hits.push(Line::Break);
        }
        Ok(true)
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> Result<bool, io::Error> {
        self.binary = true;
        Ok(false)
    }
}

fn search_file(
    searcher: &mut Searcher,
    matcher: &RegexMatcher,
    file: &std::fs::File,
    display: &str,
) -> Option<FileHits> {
    let mut sink = Collector {
        display_len: display.len(),
        hits: Vec::new(),
        matches: 0,
        bytes: 0,
        binary: false,
    };
    // A read error midway keeps what was found before it.
    let _ = searcher.search_file(matcher, file, &mut sink);
    if sink.binary || sink.matches == 0 {
        return None;
    }
    Some(FileHits {
        display: display.to_string(),
        lines: sink.hits,
        matches: sink.matches,
        bytes: sink.bytes,
    })
}

/// Results of all threads, kept in path order, trimmed to what can be shown.
struct State {
    limit: usize,
    inner: Mutex<Found>,
    /// Files after this path cannot appear in the output: not searched.
    cutoff: RwLock<Option<PathBuf>>,
}

#[derive(Default)]
struct Found {
    files: BTreeMap<PathBuf, FileHits>,
    matches: usize,
    bytes: usize,
}

impl State {
    fn new(limit: usize) -> State {
        State {
            limit,
            inner: Mutex::new(Found::default()),
            cutoff: RwLock::new(None),
        }
    }

    fn past_cutoff(&self, rel: &Path) -> bool {
        let cutoff = self.cutoff.read().unwrap_or_else(|e| e.into_inner());
        cutoff.as_deref().is_some_and(|c| rel > c)
    }

    fn insert(&self, rel: PathBuf, hits: FileHits) {
        let mut found = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if self.past_cutoff(&rel) {
            return;
        }
        found.matches += hits.matches;
        found.bytes += hits.bytes;
        found.files.insert(rel, hits);
        if found.matches <= self.limit && found.bytes <= DEFAULT_MAX_BYTES {
            return;
        }
        // The first file (in path order) by which more than `limit` matches or more
        // than 50 KB of output are known: nothing after it can be shown.
        let (mut matches, mut bytes) = (0, 0);
        let mut last = None;
        for (path, f) in &found.files {
            matches += f.matches;
            bytes += f.bytes;
            if matches > self.limit || bytes > DEFAULT_MAX_BYTES {
                last = Some(path.clone());
                break;
            }
        }
        let Some(last) = last else { return };
        let mut after = found.files.split_off(&last);
        if let Some(kept) = after.remove(&last) {
            found.files.insert(last.clone(), kept);
        }
        found.matches = found.files.values().map(|f| f.matches).sum();
        found.bytes = found.files.values().map(|f| f.bytes).sum();
        *self.cutoff.write().unwrap_or_else(|e| e.into_inner()) = Some(last);
    }

    fn finish(self, context: usize) -> Value {
        let found = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        let limit = self.limit;
        let mut out: Vec<String> = Vec::new();
        let mut shown = 0;
        let mut limit_reached = false;
        let mut lines_cut = false;
        'files: for f in found.files.values() {
            if shown == limit {
                limit_reached = true;
                break;
            }
            if context > 0 && !out.is_empty() {
                out.push("--".to_string());
            }
            // Once the limit is reached, only the trailing context of the last
            // match may follow (up to `context` lines, until a break).
            let mut trailing = 0;
            for line in &f.lines {
                let at_limit = shown == limit;
                match line {
                    Line::Match { number, text, cut } => {
                        if at_limit {
                            limit_reached = true;
                            break 'files;
                        }
                        shown += 1;
                        lines_cut |= cut;
                        out.push(format!("{}:{number}: {text}", f.display));
                    }
                    Line::Context { number, text, cut } => {
                        if at_limit {
                            if trailing >= context {
                                continue;
                            }
                            trailing += 1;
                        }
                        lines_cut |= cut;
                        out.push(format!("{}-{number}- {text}", f.display));
                    }
                    Line::Break => {
                        if at_limit {
                            trailing = context;
                        } else {
                            out.push("--".to_string());
                        }
                    }
                }
            }
        }
        if shown == 0 {
            return json!({ "content": "No matches found" });
        }

        let raw = out.join("\n");
        let truncation = truncate_head(&raw, NO_LINE_LIMIT, DEFAULT_MAX_BYTES);
        let mut content = truncation.content.clone();
        let mut details = Map::new();
        let mut notices = Vec::new();
        if limit_reached {
            notices.push(format!(
                "{limit} matches limit reached. Use limit={} for more, or refine pattern",
                limit.saturating_mul(2)
            ));
            details.insert("matchLimitReached".into(), json!(limit));
        }
        if truncation.truncated {
            notices.push(format!("{}KB limit reached", DEFAULT_MAX_BYTES / 1024));
            details.insert(
                "truncation".into(),
                serde_json::to_value(&truncation).expect("truncation serializes"),
            );
        }
        if lines_cut {
            notices.push(format!(
                "Some lines truncated to {GREP_MAX_LINE_LENGTH} chars. Use read tool to see full lines"
            ));
            details.insert("linesTruncated".into(), json!(true));
        }
        if !notices.is_empty() {
            content = format!("{content}\n\n[{}]", notices.join(". "));
        }
        let mut result = json!({ "content": content });
        if !details.is_empty() {
            result["details"] = Value::Object(details);
        }
        result
    }
}

struct Workers<'a> {
    root: &'a WalkRoot,
    matcher: &'a RegexMatcher,
    searcher: &'a Searcher,
    state: &'a State,
}

impl<'s> ParallelVisitorBuilder<'s> for Workers<'s> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        Box::new(Worker {
            root: self.root,
            matcher: self.matcher.clone(),
            searcher: self.searcher.clone(),
            state: self.state,
        })
    }
}

struct Worker<'a> {
    root: &'a WalkRoot,
    matcher: RegexMatcher,
    searcher: Searcher,
    state: &'a State,
}

impl ParallelVisitor for Worker<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) -> WalkState {
        let Ok(entry) = entry else {
            return WalkState::Continue;
        };
        if entry.depth() == 0 {
            return WalkState::Continue;
        }
        let Some(rel) = self.root.relative(entry.path()) else {
            return WalkState::Continue;
        };
        let Some(ft) = entry.file_type() else {
            return WalkState::Continue;
        };
        if self.state.past_cutoff(rel) {
            return if ft.is_dir() {
                WalkState::Skip
            } else {
                WalkState::Continue
            };
        }
        if !ft.is_file() {
            return WalkState::Continue;
        }
        let Ok(file) = self.root.open_file(rel) else {
            return WalkState::Continue;
        };
        let display = rel.to_string_lossy();
        if let Some(hits) = search_file(&mut self.searcher, &self.matcher, &file, &display) {
            self.state.insert(rel.to_path_buf(), hits);
        }
        WalkState::Continue
    }
}

#[cfg(test)]
mod tests;
