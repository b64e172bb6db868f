//! A tiny tokenizer for C-family source code (Java, JavaScript, TypeScript, Go...),
//! good enough to find declarations without being fooled by comments and strings.
//!
//! It yields identifiers, numbers and punctuation with their byte offset and the
//! `{}` nesting depth; comments are skipped and string-like literals become a single
//! [`Kind::Literal`] token. It never fails: unterminated literals and comments simply
//! run to the end of the input. Options cover the dialects: JavaScript template
//! literals (with `${...}` nesting) and regular-expression literals, Java text blocks.

/// Dialect switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dialect {
    /// `` `...${expr}...` `` template literals (JavaScript, TypeScript; Go raw strings
    /// are plain backtick strings: leave this off for Go).
    pub template_literals: bool,
    /// `/regex/flags` literals where an expression may start (JavaScript, TypeScript).
    pub regex_literals: bool,
    /// `"""` text blocks (Java).
    pub text_blocks: bool,
    /// Backtick-quoted raw strings with no escapes (Go).
    pub backtick_raw_strings: bool,
}

impl Dialect {
    /// JavaScript and TypeScript.
    pub const JS: Dialect = Dialect {
        template_literals: true,
        regex_literals: true,
        text_blocks: false,
        backtick_raw_strings: false,
    };
    /// Java.
    pub const JAVA: Dialect = Dialect {
        template_literals: false,
        regex_literals: false,
        text_blocks: true,
        backtick_raw_strings: false,
    };
    /// Go.
    pub const GO: Dialect = Dialect {
        template_literals: false,
        regex_literals: false,
        text_blocks: false,
        backtick_raw_strings: true,
    };
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword (ASCII letters, digits, `_`, `$`, and any non-ASCII).
    Ident,
    /// A number (digits and what follows them).
    Number,
    /// A string, character, template or regex literal (or one piece of a template).
    Literal,
    /// Any other single character.
    Punct,
}

/// One token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its text (a literal includes its delimiters).
    pub text: &'a str,
    /// Byte offset in the source.
    pub start: usize,
    /// `{}` depth: the number of unclosed `{` before the token (a `}` has the depth of
    /// the block it closes minus one, like its `{`).
    pub depth: usize,
}

impl Token<'_> {
    /// Whether this is the identifier `word`.
    pub fn is_ident(&self, word: &str) -> bool {
        self.kind == Kind::Ident && self.text == word
    }

    /// Whether this is the punctuation `c`.
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct && self.text.len() == c.len_utf8() && self.text.starts_with(c)
    }
}

/// Tokenize `source`. A leading `#!` line is skipped.
pub fn tokenize(source: &str, dialect: Dialect) -> Vec<Token<'_>> {
    let bytes = source.as_bytes();
    let mut tokens: Vec<Token<'_>> = Vec::new();
    let mut i = 0;
    let mut depth = 0usize;
    // Depths at which a `${` of a template literal was opened.
    let mut templates: Vec<usize> = Vec::new();
    if source.starts_with("#!") {
        i = source.find('\n').unwrap_or(source.len());
    }
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = memchr(bytes, b'\n', i).unwrap_or(bytes.len());
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = find(source, "*/", i + 2).map_or(bytes.len(), |j| j + 2);
            }
            b'/' if dialect.regex_literals && regex_allowed(tokens.last()) => {
                i = skip_regex(bytes, i);
                tokens.push(tok(Kind::Literal, source, start, i, depth));
            }
            b'"' if dialect.text_blocks && source[i..].starts_with("\"\"\"") => {
                i = skip_quoted(bytes, i + 3, b"\"\"\"");
                tokens.push(tok(Kind::Literal, source, start, i, depth));
            }
            b'"' | b'\'' => {
                i = skip_quoted(bytes, i + 1, &[c]);
                tokens.push(tok(Kind::Literal, source, start, i, depth));
            }
            b'`' if dialect.backtick_raw_strings => {
                i = memchr(bytes, b'`', i + 1).map_or(bytes.len(), |j| j + 1);
                tokens.push(tok(Kind::Literal, source, start, i, depth));
            }
            b'`' if dialect.template_literals => {
                let (end, opened) = skip_template(bytes, i + 1);
                i = end;
                tokens.push(tok(Kind::Literal, source, start, i, depth));
                if opened {
                    templates.push(depth);
                    depth += 1;
                }
            }
            b'{' => {
                tokens.push(tok(Kind::Punct, source, start, i + 1, depth));
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                if dialect.template_literals && templates.last() == Some(&depth) {
                    // The end of a `${...}`: the template continues.
                    templates.pop();
                    let (end, opened) = skip_template(bytes, i + 1);
                    i = end;
                    tokens.push(tok(Kind::Literal, source, start, i, depth));
                    if opened {
                        templates.push(depth);
                        depth += 1;
                    }
                } else {
                    tokens.push(tok(Kind::Punct, source, start, i + 1, depth));
                    i += 1;
                }
            }
            b'0'..=b'9' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                tokens.push(tok(Kind::Number, source, start, i, depth));
            }
            c if is_ident_byte(c) => {
                while i < bytes.len() && is_ident_byte(bytes[i]) {
                    i += 1;
                }
                tokens.push(tok(Kind::Ident, source, start, i, depth));
            }
            _ => {
                let len = source[i..].chars().next().map_or(1, char::len_utf8);
                i += len;
                tokens.push(tok(Kind::Punct, source, start, i, depth));
            }
        }
    }
    tokens
}

fn tok(kind: Kind, source: &str, start: usize, end: usize, depth: usize) -> Token<'_> {
    let end = end.min(source.len());
    Token {
        kind,
        text: &source[start..end],
        start,
        depth,
    }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn memchr(bytes: &[u8], needle: u8, from: usize) -> Option<usize> {
    bytes[from.min(bytes.len())..]
        .iter()
        .position(|&b| b == needle)
        .map(|p| p + from)
}

fn find(source: &str, needle: &str, from: usize) -> Option<usize> {
    source.get(from..)?.find(needle).map(|p| p + from)
}

/// Skip a quoted literal whose opening delimiter ended just before `i`; returns the
/// offset after the closing delimiter (or the end). Backslash escapes the next byte.
/// A single-character quote also ends at a newline (an unterminated literal).
fn skip_quoted(bytes: &[u8], mut i: usize, close: &[u8]) -> usize {
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i..].starts_with(close) {
            return i + close.len();
        } else if close.len() == 1 && bytes[i] == b'\n' {
            return i;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Skip template text starting at `i` (just after the backtick or the `}` of a
/// `${...}`). Returns the end offset and whether it stopped at a `${`.
fn skip_template(bytes: &[u8], mut i: usize) -> (usize, bool) {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'`' => return (i + 1, false),
            b'$' if bytes.get(i + 1) == Some(&b'{') => return (i + 2, true),
            _ => i += 1,
        }
    }
    (bytes.len(), false)
}

/// Whether a `/` after `previous` starts a regex (rather than dividing).
fn regex_allowed(previous: Option<&Token<'_>>) -> bool {
    match previous {
        None => true,
        Some(t) => match t.kind {
            Kind::Number | Kind::Literal => false,
            Kind::Ident => matches!(
                t.text,
                "return"
                    | "typeof"
                    | "instanceof"
                    | "in"
                    | "of"
                    | "new"
                    | "delete"
                    | "void"
                    | "throw"
                    | "case"
                    | "do"
                    | "else"
                    | "await"
                    | "yield"
            ),
            Kind::Punct => !matches!(t.text, ")" | "]" | "}"),
        },
    }
}

/// Skip a regex literal starting at the `/` at `i`: up to the closing `/` outside a
/// `[...]` class, then the flags; gives up at a newline.
fn skip_regex(bytes: &[u8], mut i: usize) -> usize {
    i += 1;
    let mut in_class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' => return i,
            b'[' => {
                in_class = true;
                i += 1;
            }
            b']' => {
                in_class = false;
                i += 1;
            }
            b'/' if !in_class => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                return i;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// What a JavaScript/TypeScript source says about its module system (shared by the
/// `js` and `ts` plugins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsModuleSyntax {
    /// A top-level `import ... from`/`import "x"` or `export` statement.
    pub import_export: bool,
    /// `import.meta` anywhere.
    pub import_meta: bool,
    /// An `await` outside any function (top-level await).
    pub top_level_await: bool,
    /// A call of a free `require(...)`.
    pub calls_require: bool,
    /// `require` is declared by the code itself, or `createRequire` is used.
    pub declares_require: bool,
}

impl JsModuleSyntax {
    /// Whether the code can only run as an ES module.
    pub fn is_esm(&self) -> bool {
        self.import_export || self.import_meta || self.top_level_await
    }
}

/// Scan JavaScript or TypeScript for module-system syntax.
///
/// Top-level await is an `await` at brace depth 0 with no `=>` before it in the same
/// statement on the same line (so `const f = async () => await g()` is not one).
pub fn js_module_syntax(source: &str) -> JsModuleSyntax {
    let tokens = tokenize(source, Dialect::JS);
    let mut syntax = JsModuleSyntax::default();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != Kind::Ident {
            continue;
        }
        let prev = i.checked_sub(1).map(|j| &tokens[j]);
        let next = tokens.get(i + 1);
        if prev.is_some_and(|p| p.is_punct('.')) {
            continue; // a property: `x.import`, `x.await`
        }
        match t.text {
            "import" => match next {
                Some(n) if n.is_punct('.') => syntax.import_meta = true,
                Some(n) if n.is_punct('(') => {} // dynamic import(): fine in CommonJS
                Some(n)
                    if t.depth == 0
                        && (n.kind == Kind::Ident
                            || n.kind == Kind::Literal
                            || n.is_punct('{')
                            || n.is_punct('*')) =>
                {
                    syntax.import_export = true
                }
                _ => {}
            },
            "export" if t.depth == 0 => syntax.import_export = true,
            "await" if t.depth == 0 && !arrow_before(source, &tokens, i) => {
                syntax.top_level_await = true
            }
            "require" => {
                if next.is_some_and(|n| n.is_punct('(')) {
                    syntax.calls_require = true;
                }
                if prev.is_some_and(|p| {
                    p.is_ident("const")
                        || p.is_ident("let")
                        || p.is_ident("var")
                        || p.is_ident("function")
                }) {
                    syntax.declares_require = true;
                }
            }
            "createRequire" => syntax.declares_require = true,
            _ => {}
        }
    }
    syntax
}

/// Whether an `=>` precedes token `i` in the same statement and on the same line.
fn arrow_before(source: &str, tokens: &[Token<'_>], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        j -= 1;
        let t = &tokens[j];
        let between = &source[t.start + t.text.len()..tokens[j + 1].start];
        if between.contains('\n') {
            return false;
        }
        if t.is_punct(';') || t.is_punct('}') || t.is_punct('{') {
            return false;
        }
        if t.is_punct('>')
            && j > 0
            && tokens[j - 1].is_punct('=')
            && tokens[j - 1].start + 1 == t.start
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(src: &str, d: Dialect) -> Vec<(String, usize)> {
        tokenize(src, d)
            .into_iter()
            .filter(|t| t.kind == Kind::Ident)
            .map(|t| (t.text.to_string(), t.depth))
            .collect()
    }

    fn words(src: &str, d: Dialect) -> Vec<String> {
        idents(src, d).into_iter().map(|(w, _)| w).collect()
    }

    #[test]
    fn skips_comments_and_strings() {
        let src = "a // class X\n/* class Y */ b \"class Z\" 'c' d";
        assert_eq!(words(src, Dialect::JAVA), ["a", "b", "d"]);
    }

    #[test]
    fn depths() {
        let src = "class A { void f() { x } } y";
        let got = idents(src, Dialect::JAVA);
        assert_eq!(
            got,
            [
                ("class".into(), 0),
                ("A".into(), 0),
                ("void".into(), 1),
                ("f".into(), 1),
                ("x".into(), 2),
                ("y".into(), 0)
            ]
        );
        let close: Vec<usize> = tokenize(src, Dialect::JAVA)
            .iter()
            .filter(|t| t.is_punct('}'))
            .map(|t| t.depth)
            .collect();
        assert_eq!(close, [1, 0]);
    }

    #[test]
    fn java_text_blocks_and_escapes() {
        let src = "a \"\"\"\n class X { \" \n\"\"\" b \"q\\\"class\" c '\\'' d";
        assert_eq!(words(src, Dialect::JAVA), ["a", "b", "c", "d"]);
    }

    #[test]
    fn js_templates_nest() {
        let src = "a `x ${ b + `y ${c}` } import ${ {d: 1}.d }` e";
        assert_eq!(
            idents(src, Dialect::JS),
            [
                ("a".into(), 0),
                ("b".into(), 1),
                ("c".into(), 2),
                ("d".into(), 2),
                ("d".into(), 1),
                ("e".into(), 0)
            ]
        );
    }

    #[test]
    fn js_regex_vs_division() {
        let src = "x = /import ['\"]/g; y = a / b / c; z = (1) / 2; return /}/";
        assert_eq!(
            words(src, Dialect::JS),
            ["x", "y", "a", "b", "c", "z", "return"]
        );
        let src = "if (q) /export/.test(s)";
        // After `)` a slash divides: a known, harmless limitation.
        assert!(words(src, Dialect::JS).contains(&"export".to_string()));
    }

    #[test]
    fn go_raw_strings() {
        let src = "a := `package foo \\` b";
        assert_eq!(words(src, Dialect::GO), ["a", "b"]);
    }

    #[test]
    fn shebang_and_unterminated() {
        assert_eq!(
            words("#!/usr/bin/env node\nimport x", Dialect::JS),
            ["import", "x"]
        );
        assert_eq!(
            words("a \"unterminated\nb /* never", Dialect::JAVA),
            ["a", "b"]
        );
        assert_eq!(words("é_1 x$", Dialect::JAVA), ["é_1", "x$"]);
    }

    #[test]
    fn js_module_detection() {
        let esm = |s: &str| js_module_syntax(s).is_esm();
        assert!(esm("import fs from 'fs';"));
        assert!(esm("import { x } from './x.mjs'"));
        assert!(esm("import * as p from 'path'"));
        assert!(esm("import './side-effect.js'"));
        assert!(esm("export const x = 1"));
        assert!(esm("export default function () {}"));
        assert!(esm("console.log(import.meta.url)"));
        assert!(esm("const r = await fetch(u);"));
        assert!(esm("for await (const x of xs) {}"));
        assert!(esm("main(await load())"));
        assert!(!esm("const fs = require('fs');"));
        assert!(!esm("import('./x.mjs').then(m => m.f())"));
        assert!(!esm("async function f() { await g(); }"));
        assert!(!esm("const f = async () => await g();"));
        assert!(!esm("(async () => { await g() })()"));
        assert!(!esm(
            "// import fs from 'fs'\n/* export x */ const s = 'import x from \"y\"';"
        ));
        assert!(!esm(
            "const s = `export ${x}`; module.exports = {}; exports.a = 1"
        ));
        assert!(!esm("obj.import(x); obj.export = 1; q.await"));
        let s = js_module_syntax("const fs = require('fs'); await 1");
        assert!(s.top_level_await && s.calls_require && !s.declares_require);
        let s = js_module_syntax("import { createRequire } from 'module'; const require = createRequire(import.meta.url); require('x')");
        assert!(s.calls_require && s.declares_require);
    }
}
