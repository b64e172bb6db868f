//! The file tools: read, write, edit, ls, find and grep.
//!
//! Each tool is one module with a `#[derive(Deserialize)]` request struct (camelCase
//! fields, as the original coding sidecar took them) and a synchronous
//! `run(&Session, Request) -> Result<serde_json::Value, ToolError>` that returns the
//! `result` object of the `{"ok": true, "result": …}` envelope. The HTTP layer owns
//! the envelope, the session lookup (`sessionId`, also accepted in every request
//! struct) and where these run: on the request's worker when the work is small, else
//! on a blocking thread (api/tools.rs).
//!
//! All file access goes through [`crate::workspace`], which confines it to the
//! session directory. Shared output limits live in [`truncation`]; the directory
//! walker shared by find and grep in `walk`.
//!
//! Request validation: a required field that is missing, `null` or blank answers
//! `Missing or invalid <field>` (the original's words; "blank" as JavaScript's
//! `trim` sees it, see [`js_trim`]); a field of the wrong JSON type is refused by
//! serde. Numbers may be integers or floats (floored); a non-positive `limit` means
//! the default, as in the original.

#[cfg(test)]
mod bench;
pub mod edit;
pub mod find;
pub mod grep;
pub mod ls;
pub mod read;
pub mod truncation;
mod walk;
pub mod write;

pub use crate::workspace::{ToolError, ToolErrorKind};

/// `s` without the leading and trailing white space of JavaScript's
/// `String.prototype.trim` (Unicode `Zs`, tab, the line terminators, VT, FF and
/// U+FEFF; unlike Rust's `trim`, not U+0085), which the original applied to its
/// request fields.
pub(crate) fn js_trim(s: &str) -> &str {
    s.trim_matches(|c| {
        matches!(
            c,
            '\t'..='\r'
                | ' '
                | '\u{a0}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
        )
    })
}

/// Returns a required string field, or `Missing or invalid <name>` when it is
/// absent or blank (white space only).
pub(crate) fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ToolError> {
    match value.as_deref() {
        Some(v) if !js_trim(v).is_empty() => Ok(v),
        _ => Err(ToolError::bad_request(format!("Missing or invalid {name}"))),
    }
}

/// A positive limit, or `default` when absent or not positive.
pub(crate) fn limit_or(value: Option<i64>, default: usize) -> usize {
    match value {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => default,
    }
}

/// An optional path field: absent or blank means `.`.
pub(crate) fn path_or_dot(value: &Option<String>) -> &str {
    match value.as_deref() {
        Some(v) if !js_trim(v).is_empty() => v,
        _ => ".",
    }
}

/// Serde helpers for JSON numbers that may be integers or floats.
pub(crate) mod num {
    use serde::de::{self, Deserializer, Visitor};
    use std::fmt;

    struct NumVisitor;

    impl<'de> Visitor<'de> for NumVisitor {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(NumVisitor)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(i64::try_from(v).unwrap_or(i64::MAX)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() {
                // `as` saturates.
                Ok(Some(v.floor() as i64))
            } else {
                Ok(None)
            }
        }
    }

    /// `Option<i64>` from a JSON integer, float (floored) or null.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        d.deserialize_option(NumVisitor)
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::workspace::{Session, Workspace};

    /// A fresh workspace root with one session (`t`).
    pub fn session() -> (tempfile::TempDir, Session) {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::new(tmp.path().join("root"), false);
        let s = ws.session(Some("t")).unwrap();
        (tmp, s)
    }

    pub fn write(s: &Session, rel: &str, content: impl AsRef<[u8]>) {
        let p = s.dir().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct N {
        #[serde(default, deserialize_with = "num::opt_i64")]
        n: Option<i64>,
    }

    #[test]
    fn numbers() {
        let p = |s: &str| serde_json::from_str::<N>(s).map(|n| n.n);
        assert_eq!(p("{}").unwrap(), None);
        assert_eq!(p(r#"{"n":null}"#).unwrap(), None);
        assert_eq!(p(r#"{"n":5}"#).unwrap(), Some(5));
        assert_eq!(p(r#"{"n":-5}"#).unwrap(), Some(-5));
        assert_eq!(p(r#"{"n":2.9}"#).unwrap(), Some(2));
        assert_eq!(p(r#"{"n":1e300}"#).unwrap(), Some(i64::MAX));
        let e = p(r#"{"n":"5"}"#).unwrap_err().to_string();
        assert!(e.contains("expected a number"), "{e}");
        assert!(p(r#"{"n":true}"#).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(limit_or(None, 7), 7);
        assert_eq!(limit_or(Some(0), 7), 7);
        assert_eq!(limit_or(Some(-3), 7), 7);
        assert_eq!(limit_or(Some(3), 7), 3);
        assert_eq!(path_or_dot(&None), ".");
        assert_eq!(path_or_dot(&Some("  ".into())), ".");
        assert_eq!(path_or_dot(&Some("a".into())), "a");
        assert!(required(&None, "path")
            .unwrap_err()
            .message
            .contains("Missing or invalid path"));
        assert!(required(&Some(" ".into()), "path").is_err());
        assert!(required(&Some("\u{feff}\u{3000}\n".into()), "path").is_err());
        assert_eq!(required(&Some("x".into()), "path").unwrap(), "x");
        assert_eq!(required(&Some(" x ".into()), "path").unwrap(), " x ");
        assert_eq!(js_trim("\t\u{a0} a b\r\n\u{2028}"), "a b");
        // U+0085 is white space to Rust, not to JavaScript.
        assert_eq!(js_trim("\u{85}a\u{85}"), "\u{85}a\u{85}");
    }
}
