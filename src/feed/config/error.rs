//! [`ConfigError`]: what is wrong, where, and what to write instead.

use std::path::PathBuf;

use crate::error::StoreError;

/// A configuration that could not be loaded. Every message says where the problem is and
/// what is expected, for example
/// `watched_resources.secrets.cache_ttl: a zero cache_ttl would expire bodies as soon as they are fetched; give a positive duration such as 30s or 5m (line 12, column 16)`.
///
/// [`source`](std::error::Error::source) is the underlying error where there is one: the
/// operating system's for [`Read`](Self::Read), the YAML parser's for
/// [`Yaml`](Self::Yaml), the store's for [`Store`](Self::Store).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read. Fix: check the path and its permissions.
    #[error("cannot read configuration file {}: {error}", .path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        error: std::io::Error,
    },
    /// The text is not YAML, or not shaped like a configuration (an unknown top-level
    /// field, a list where a mapping belongs, a duplicate key). The message is the YAML
    /// parser's, with the line and column.
    #[error("{}{message}", file_prefix(.file))]
    Yaml {
        /// The file, when loaded with [`Config::from_path`](super::Config::from_path).
        file: Option<PathBuf>,
        /// What is wrong and where.
        message: String,
        /// The line (from 1), when known.
        line: Option<u64>,
        /// The column (from 1), when known.
        column: Option<u64>,
        /// The parser's error (`None` for an empty document, which parses).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A setting is invalid: unknown, missing, of the wrong type or value, or not
    /// applicable to the resource's `store`.
    #[error("{}{path}: {reason}{}", file_prefix(.file), at_suffix(*.line, *.column))]
    Invalid {
        /// The file, when loaded with [`Config::from_path`](super::Config::from_path).
        file: Option<PathBuf>,
        /// Where in the configuration, as `watched_resources.<name>.<field>`.
        path: String,
        /// What is wrong and what is expected.
        reason: String,
        /// The line (from 1), when known.
        line: Option<u64>,
        /// The column (from 1), when known.
        column: Option<u64>,
    },
    /// [`Stores::start`](crate::stores::Stores::start) could not build a resource's store
    /// from its settings. A configuration as loaded never gets this: it is for settings
    /// changed after loading (the fields of a
    /// [`ResourceConfig`](super::ResourceConfig) are public) to values the store refuses.
    #[error("{path}: {source}")]
    Store {
        /// `watched_resources.<name>`.
        path: String,
        /// What the store said.
        #[source]
        source: StoreError,
    },
}

pub(super) fn file_prefix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

pub(super) fn at_suffix(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}
