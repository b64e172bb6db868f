//! Configuration: `languages.toml` (the languages and their settings). Server settings
//! are command-line flags and environment variables, defined in [`crate::cli`].

pub mod languages;

pub use languages::{ConfigError, LanguageEntry, LanguagesFile};
