//! Command templates: split a template into words like a POSIX shell would, then
//! substitute `{placeholders}` inside each word.
//!
//! Splitting happens *before* substitution, so a substituted value (a path with a
//! space, a quote, a `;`) always stays inside the word it was written in and is never
//! interpreted. Nothing here runs a shell.
//!
//! Splitting rules (a small, strict subset of POSIX `sh` word splitting):
//! - blanks (space, tab, newline) separate words outside quotes;
//! - `'...'` is literal up to the next `'`;
//! - `"..."` is literal except for `\"`, `\\`, `\$`, `` \` `` and backslash-newline;
//! - a backslash outside quotes takes the next character literally (a
//!   backslash-newline is a line continuation and disappears);
//! - `''` and `""` make an empty word;
//! - an unterminated quote or a trailing backslash is an error;
//! - the shell operators `|`, `&`, `;`, `<`, `>`, `` ` `` and `$` are errors when
//!   unquoted: templates are not run by a shell, so writing one is a mistake (quote it
//!   to mean the character itself).
//!
//! Substitution rules: `{name}` is replaced by the value of the placeholder `name`;
//! `{{` and `}}` are literal braces; an unknown placeholder, a `{` with no closing `}`
//! and a lone `}` are errors. Substitution applies inside quotes too (quotes only group
//! words); write `{{file}}` for a literal `{file}`.

use std::fmt;

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `'` or `"` that is never closed.
    UnterminatedQuote(char),
    /// A backslash at the very end of the template.
    TrailingBackslash,
    /// An unquoted shell operator such as `|`, `&&`, `;`, `>`, `$`.
    ShellOperator(char),
    /// The template has no words at all.
    Empty,
    /// `{name}` where `name` is not a known placeholder.
    UnknownPlaceholder { name: String, known: Vec<String> },
    /// A `{` with no matching `}`.
    UnclosedBrace,
    /// A `}` that closes nothing (write `}}` for a literal brace).
    UnmatchedBrace,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::UnterminatedQuote(q) => write!(f, "unterminated {q} quote"),
            TemplateError::TrailingBackslash => write!(f, "trailing backslash"),
            TemplateError::ShellOperator(c) => write!(
                f,
                "unquoted `{c}`: templates are not run by a shell (quote it to mean the character itself)"
            ),
            TemplateError::Empty => write!(f, "empty command"),
            TemplateError::UnknownPlaceholder { name, known } => {
                write!(f, "unknown placeholder `{{{name}}}` (known:")?;
                for k in known {
                    write!(f, " {{{k}}}")?;
                }
                write!(f, "; write `{{{{` and `}}}}` for literal braces)")
            }
            TemplateError::UnclosedBrace => {
                write!(f, "`{{` without a closing `}}` (write `{{{{` for a literal brace)")
            }
            TemplateError::UnmatchedBrace => {
                write!(f, "`}}` without an opening `{{` (write `}}}}` for a literal brace)")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

/// Split `template` into words (see the module docs for the rules). Placeholders are
/// left untouched.
pub fn split_words(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has started (so that `''` yields an empty word).
    let mut in_word = false;
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(TemplateError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(TemplateError::UnterminatedQuote('"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(TemplateError::UnterminatedQuote('"')),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err(TemplateError::TrailingBackslash),
            },
            '|' | '&' | ';' | '<' | '>' | '`' | '$' => {
                return Err(TemplateError::ShellOperator(c));
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Placeholder values for one plan: the standard ones of the WIT contract plus any a
/// plugin adds (Java's `{class}`, for example).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    entries: Vec<(String, String)>,
}

impl Vars {
    /// No placeholders at all (only `{{` and `}}` work).
    pub fn empty() -> Self {
        Vars::default()
    }

    /// The standard placeholders for a code file at `filename` (a path relative to the
    /// scratch dir): `{file}`, `{filename}`, `{stem}`, `{workdir}`, `{tmpdir}`, `{out}`.
    pub fn standard(work_dir: &str, scratch_dir: &str, filename: &str) -> Self {
        let file = join(scratch_dir, filename);
        let base = filename.rsplit('/').next().unwrap_or(filename).to_string();
        let stem = match base.rfind('.') {
            Some(i) if i > 0 => base[..i].to_string(),
            _ => base.clone(),
        };
        let out = join(scratch_dir, &stem);
        let mut vars = Vars::empty();
        vars.set("file", file);
        vars.set("filename", base);
        vars.set("stem", stem);
        vars.set("workdir", trim_dir(work_dir));
        vars.set("tmpdir", trim_dir(scratch_dir));
        vars.set("out", out);
        vars
    }

    /// Set (or replace) a placeholder. Names are used as written between the braces.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name.to_string(), value)),
        }
        self
    }

    /// The value of a placeholder, if defined.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Names of all placeholders, in definition order.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Substitute placeholders in one string (no word splitting): used for single
    /// words and for environment values.
    pub fn substitute(&self, text: &str) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    out.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    out.push('}');
                }
                '}' => return Err(TemplateError::UnmatchedBrace),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => return Err(TemplateError::UnclosedBrace),
                            Some(c) => name.push(c),
                        }
                    }
                    match self.get(&name) {
                        Some(value) => out.push_str(value),
                        None => {
                            return Err(TemplateError::UnknownPlaceholder {
                                name,
                                known: self.names(),
                            })
                        }
                    }
                }
                c => out.push(c),
            }
        }
        Ok(out)
    }

    /// Render a command template into argv: split into words first, then substitute
    /// placeholders inside each word. An empty template is an error.
    pub fn render_argv(&self, template: &str) -> Result<Vec<String>, TemplateError> {
        let words = split_words(template)?;
        if words.is_empty() {
            return Err(TemplateError::Empty);
        }
        words.iter().map(|w| self.substitute(w)).collect()
    }
}

/// `dir/name`, without doubling a trailing slash of `dir`.
pub fn join(dir: &str, name: &str) -> String {
    let dir = trim_dir(dir);
    if dir.is_empty() {
        return format!("/{name}");
    }
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn trim_dir(dir: &str) -> String {
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() && dir.starts_with('/') {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_words(s).unwrap()
    }

    fn vars() -> Vars {
        Vars::standard("/work dir", "/scratch/x1/", "code.py")
    }

    #[test]
    fn splits_on_blanks() {
        assert_eq!(split("  a b\t c\nd  "), ["a", "b", "c", "d"]);
        assert!(split("").is_empty());
        assert!(split("   ").is_empty());
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(
            split(r#"a 'b c' 'd\e' 'x"y'"#),
            ["a", "b c", r"d\e", "x\"y"]
        );
    }

    #[test]
    fn double_quotes_keep_some_escapes() {
        assert_eq!(
            split(r#""a b" "q\"q" "back\\slash" "keep\n" "dollar\$""#),
            ["a b", "q\"q", r"back\slash", r"keep\n", "dollar$"]
        );
    }

    #[test]
    fn backslash_escapes_outside_quotes() {
        assert_eq!(split(r"a\ b c\'d \|"), ["a b", "c'd", "|"]);
        assert_eq!(split("a \\\nb"), ["a", "b"]);
    }

    #[test]
    fn quotes_join_adjacent_text() {
        assert_eq!(
            split(r#"-I"my dir"/x pre'fix'post"#),
            ["-Imy dir/x", "prefixpost"]
        );
    }

    #[test]
    fn empty_quotes_make_empty_words() {
        assert_eq!(split(r#"a '' "" b"#), ["a", "", "", "b"]);
    }

    #[test]
    fn split_errors() {
        assert_eq!(
            split_words("a 'b"),
            Err(TemplateError::UnterminatedQuote('\''))
        );
        assert_eq!(
            split_words("a \"b"),
            Err(TemplateError::UnterminatedQuote('"'))
        );
        assert_eq!(
            split_words("a \"b\\"),
            Err(TemplateError::UnterminatedQuote('"'))
        );
        assert_eq!(split_words("a \\"), Err(TemplateError::TrailingBackslash));
        assert_eq!(
            split_words("a && b"),
            Err(TemplateError::ShellOperator('&'))
        );
        assert_eq!(split_words("a | b"), Err(TemplateError::ShellOperator('|')));
        assert_eq!(split_words("a; b"), Err(TemplateError::ShellOperator(';')));
        assert_eq!(split_words("a >x"), Err(TemplateError::ShellOperator('>')));
        assert_eq!(
            split_words("echo $HOME"),
            Err(TemplateError::ShellOperator('$'))
        );
        assert_eq!(split("a '&&' \";\" \\$"), ["a", "&&", ";", "$"]);
    }

    #[test]
    fn standard_placeholders() {
        let v = vars();
        assert_eq!(
            v.render_argv("run {file} {filename} {stem} {workdir} {tmpdir} {out}")
                .unwrap(),
            [
                "run",
                "/scratch/x1/code.py",
                "code.py",
                "code",
                "/work dir",
                "/scratch/x1",
                "/scratch/x1/code"
            ]
        );
    }

    #[test]
    fn substituted_values_are_never_split() {
        let v = vars();
        // The work dir has a space: it stays one word.
        assert_eq!(
            v.render_argv("java -cp {tmpdir}:{workdir} Main").unwrap(),
            ["java", "-cp", "/scratch/x1:/work dir", "Main"]
        );
        let mut v = Vars::empty();
        v.set("x", "a 'b' \"c\" $(rm -rf /); `d` && e");
        assert_eq!(
            v.render_argv("echo {x}").unwrap(),
            ["echo", "a 'b' \"c\" $(rm -rf /); `d` && e"]
        );
    }

    #[test]
    fn placeholders_inside_words_and_quotes() {
        let v = vars();
        assert_eq!(
            v.render_argv("ldc2 -of={out} '{stem}.o' \"x {stem}\"")
                .unwrap(),
            ["ldc2", "-of=/scratch/x1/code", "code.o", "x code"]
        );
    }

    #[test]
    fn literal_braces() {
        let v = vars();
        assert_eq!(
            v.render_argv("echo {{file}} {{}} }}{stem}{{").unwrap(),
            ["echo", "{file}", "{}", "}code{"]
        );
    }

    #[test]
    fn unknown_placeholder_is_named() {
        let err = vars().render_argv("python {fiel}").unwrap_err();
        assert!(matches!(&err, TemplateError::UnknownPlaceholder { name, .. } if name == "fiel"));
        let msg = err.to_string();
        assert!(msg.contains("`{fiel}`"), "{msg}");
        assert!(msg.contains("{file}"), "{msg}");
    }

    #[test]
    fn brace_errors() {
        let v = vars();
        assert_eq!(v.render_argv("a {file"), Err(TemplateError::UnclosedBrace));
        assert_eq!(
            v.render_argv("a {fi{le}"),
            Err(TemplateError::UnclosedBrace)
        );
        assert_eq!(v.render_argv("a file}"), Err(TemplateError::UnmatchedBrace));
        assert!(matches!(
            v.render_argv("a {}"),
            Err(TemplateError::UnknownPlaceholder { name, .. }) if name.is_empty()
        ));
    }

    #[test]
    fn empty_template_is_an_error() {
        assert_eq!(vars().render_argv("  "), Err(TemplateError::Empty));
        // ...but an empty quoted word is a (strange but valid) program name.
        assert_eq!(vars().render_argv("''").unwrap(), [""]);
    }

    #[test]
    fn substitute_env_values() {
        let v = vars();
        assert_eq!(
            v.substitute("{tmpdir}/go cache:{workdir}").unwrap(),
            "/scratch/x1/go cache:/work dir"
        );
        // No splitting and no quote processing in values.
        assert_eq!(v.substitute("'a b'").unwrap(), "'a b'");
    }

    #[test]
    fn extra_placeholders_and_override() {
        let mut v = vars();
        v.set("class", "x.y.Greeter").set("stem", "S");
        assert_eq!(
            v.render_argv("java {class} {stem}").unwrap(),
            ["java", "x.y.Greeter", "S"]
        );
    }

    #[test]
    fn stems_and_paths() {
        let v = Vars::standard("/w/", "/", "x/y/Greeter.java");
        assert_eq!(v.get("file"), Some("/x/y/Greeter.java"));
        assert_eq!(v.get("filename"), Some("Greeter.java"));
        assert_eq!(v.get("stem"), Some("Greeter"));
        assert_eq!(v.get("out"), Some("/Greeter"));
        assert_eq!(v.get("workdir"), Some("/w"));
        assert_eq!(v.get("tmpdir"), Some("/"));
        let v = Vars::standard("/w", "/s", ".hidden");
        assert_eq!(v.get("stem"), Some(".hidden"));
        let v = Vars::standard("/w", "/s", "noext");
        assert_eq!(v.get("stem"), Some("noext"));
        assert_eq!(v.get("out"), Some("/s/noext"));
    }
}
