//! Lookups in a language's `options` (the free-form table of `languages.toml`, passed
//! as strings: TOML strings verbatim, other values in TOML syntax). A bad value is a
//! settings mistake, reported as `plan-error::unsupported` with the option named.

use crate::{LanguageConfig, PlanError};

/// The value of option `name`, if set (the last one wins if it appears twice).
pub fn option_str<'a>(config: &'a LanguageConfig, name: &str) -> Option<&'a str> {
    config
        .options
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A boolean option: `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`, any case);
/// `default` when unset.
pub fn option_bool(config: &LanguageConfig, name: &str, default: bool) -> Result<bool, PlanError> {
    let Some(value) = option_str(config, name) else {
        return Ok(default);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(PlanError::unsupported(format!(
            "option `{name}` of language `{}` must be true or false, not {value:?}",
            config.code
        ))),
    }
}

/// An option that must be one of `choices`; `default` when unset.
pub fn option_choice<'a>(
    config: &'a LanguageConfig,
    name: &str,
    choices: &[&'a str],
    default: &'a str,
) -> Result<&'a str, PlanError> {
    let Some(value) = option_str(config, name) else {
        return Ok(default);
    };
    match choices.iter().find(|c| **c == value) {
        Some(c) => Ok(c),
        None => Err(PlanError::unsupported(format!(
            "option `{name}` of language `{}` must be one of {}, not {value:?}",
            config.code,
            choices
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LanguageConfig {
        LanguageConfig::new("x", "X", "x", "code.x", "x {file}")
            .option("mode", "strip")
            .option("fast", "yes")
            .option("bad", "maybe")
    }

    #[test]
    fn strings() {
        assert_eq!(option_str(&cfg(), "mode"), Some("strip"));
        assert_eq!(option_str(&cfg(), "nope"), None);
    }

    #[test]
    fn bools() {
        assert_eq!(option_bool(&cfg(), "fast", false), Ok(true));
        assert_eq!(option_bool(&cfg(), "nope", true), Ok(true));
        let err = option_bool(&cfg(), "bad", false).unwrap_err();
        assert_eq!(
            err.message(),
            "option `bad` of language `x` must be true or false, not \"maybe\""
        );
    }

    #[test]
    fn choices() {
        assert_eq!(
            option_choice(&cfg(), "mode", &["tsc", "strip"], "tsc"),
            Ok("strip")
        );
        assert_eq!(
            option_choice(&cfg(), "nope", &["tsc", "strip"], "tsc"),
            Ok("tsc")
        );
        let err = option_choice(&cfg(), "fast", &["tsc", "strip"], "tsc").unwrap_err();
        assert!(matches!(err, PlanError::Unsupported(_)));
        assert_eq!(
            err.message(),
            "option `fast` of language `x` must be one of \"tsc\", \"strip\", not \"yes\""
        );
    }
}
