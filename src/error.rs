//! The crate's error type.

use std::fmt;
use std::time::Duration;

/// The operation that failed, named in every [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Building a store (`new` or a builder's `build`).
    Build,
    /// [`MemoryStore::add`](crate::MemoryStore::add).
    Add,
    /// [`MemoryStore::update`](crate::MemoryStore::update).
    Update,
    /// [`MemoryStore::get`](crate::MemoryStore::get).
    Get,
    /// [`MemoryStore::delete`](crate::MemoryStore::delete).
    Delete,
    /// [`MemoryStore::remove`](crate::MemoryStore::remove).
    Remove,
    /// [`MemoryStore::replace`](crate::MemoryStore::replace).
    Replace,
    /// Extracting keys from an object with an [`Indexer`](crate::Indexer).
    Index,
    /// Fetching an object's body from the API server (the on-demand tier).
    Fetch,
    /// Loading a configuration.
    Config,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Build => "build",
            Operation::Add => "add",
            Operation::Update => "update",
            Operation::Get => "get",
            Operation::Delete => "delete",
            Operation::Remove => "remove",
            Operation::Replace => "replace",
            Operation::Index => "index",
            Operation::Fetch => "fetch",
            Operation::Config => "config",
        })
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A store needs at least one key component. Fix: pass `num_keys >= 1`.
    #[error("a store needs at least one key component, got num_keys = 0")]
    ZeroKeys,
    /// A store (and an indexer) takes at most [`MAX_KEYS`](crate::MAX_KEYS) key
    /// components. Fix: index by fewer fields; a composite key of more than a handful of
    /// components is better split into a secondary lookup.
    #[error("a store takes at most {max} key components, got num_keys = {given}")]
    TooManyKeys {
        /// [`MAX_KEYS`](crate::MAX_KEYS).
        max: usize,
        /// How many were asked for.
        given: usize,
    },
    /// `add`, `update`, `delete` and `replace` take exactly `num_keys` components.
    /// Fix: pass one component for each entry of the store's `index_by`.
    #[error("expected {expected} key components, got {given}")]
    KeyCount {
        /// The store's `num_keys`.
        expected: usize,
        /// How many were given.
        given: usize,
    },
    /// `get` takes between 1 and `num_keys` components (fewer is a prefix lookup).
    /// Fix: pass at least one component and no more than the store has.
    #[error("expected 1..={max} key components, got {given}")]
    PrefixLength {
        /// The store's `num_keys`.
        max: usize,
        /// How many were given.
        given: usize,
    },
    /// A builder setting is out of range; the message says which and what is valid.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// A field path could not be parsed; the message says where and why.
    #[error("invalid field path {path:?}: {reason}")]
    InvalidFieldPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An object lacks a field that a key is extracted from (and the indexer is not
    /// configured to use an empty component for missing fields).
    #[error("field {path:?} is missing in object {object}")]
    MissingField {
        /// The path as given.
        path: String,
        /// The object's `namespace/name`.
        object: String,
    },
    /// A field holds an object or array, which cannot be a key component.
    #[error("field {path:?} of object {object} is {found}, not a string, number or boolean")]
    NotAScalar {
        /// The path as given.
        path: String,
        /// The object's `namespace/name`.
        object: String,
        /// What was found ("an object", "an array").
        found: &'static str,
    },
    /// The object could not be turned into JSON to read a non-metadata field.
    #[error("object {object} could not be serialised to read its fields: {message}")]
    Serialize {
        /// The object's `namespace/name`.
        object: String,
        /// serde_json's message.
        message: String,
    },
    /// The on-demand tier could not fetch an object's body. The object is not dropped
    /// from the result silently: the whole `get` fails with this cause. (An object the
    /// API server answers `404 Not Found` for is not an error: it is left out.)
    #[error("object {object}: {cause}")]
    Fetch {
        /// The object's `namespace/name`.
        object: String,
        /// What the API server or the connection said.
        cause: FetchError,
    },
    /// An object's identity metadata (`metadata` itself, or its `namespace`, `name`,
    /// `uid` or `resourceVersion`) is present but not of the type Kubernetes gives it,
    /// for example `"name": 5` in a `serde_json::Value`. Such an object is refused
    /// rather than read as if the field were empty, which would merge distinct objects
    /// into one identity. Fix: give the field as a string (or `null`, or leave it out).
    #[error("{field} is {found}, not a string: the store cannot tell this object's identity")]
    InvalidMetadata {
        /// The field, as `metadata.name`.
        field: &'static str,
        /// What was found ("a number", "a boolean", "a list", "a mapping").
        found: &'static str,
    },
    /// `get_one` found several objects under a key it expected to be unique.
    /// Fix: use `get`, which returns them all, or index by a key that is unique.
    #[error("{found} objects share this key; get_one expects at most one")]
    NotUnique {
        /// How many objects are under the key.
        found: usize,
    },
    /// An on-demand store scoped to one namespace was given an object of another.
    /// Fix: scope the store to all namespaces, or filter the watch by namespace.
    #[error("object {object} is outside the store's namespace {scope:?}")]
    OutOfScope {
        /// The object's `namespace/name`.
        object: String,
        /// The store's namespace.
        scope: String,
    },
}

/// The error every fallible operation of this crate returns: the operation, the keys
/// involved (possibly none) and the cause.
///
/// Its message names all three, for example
/// `add ["default", "a", "b"]: expected 2 key components, got 3`. Keys are printed
/// with Rust string escapes, so keys containing `/`, quotes, NUL or unicode are shown
/// unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {keys:?}: {kind}")]
pub struct StoreError {
    /// The operation that failed.
    pub operation: Operation,
    /// The keys the caller passed (empty where the operation took none).
    pub keys: Vec<String>,
    /// Why it failed.
    pub kind: ErrorKind,
}

impl StoreError {
    pub(crate) fn new<S: AsRef<str>>(operation: Operation, keys: &[S], kind: ErrorKind) -> Self {
        Self {
            operation,
            keys: keys.iter().map(|k| k.as_ref().to_owned()).collect(),
            kind,
        }
    }

    pub(crate) fn build(kind: ErrorKind) -> Self {
        Self {
            operation: Operation::Build,
            keys: Vec::new(),
            kind,
        }
    }
}

/// Why a fetch failed. `404 Not Found` is not an error (the fetch returns `None`).
///
/// Messages never contain object bodies: decode errors keep only serde's category and
/// position, not the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The API server answered with an error status (other than 404, and other than a
    /// 429 that was retried).
    #[error("the API server answered {code} {reason}: {message}")]
    Api {
        /// The HTTP status code.
        code: u16,
        /// The Status `reason` (`InternalError`, `Forbidden`, ...), empty if none.
        reason: String,
        /// The Status `message`.
        message: String,
    },
    /// Still throttled (`429 Too Many Requests`) after the configured retries, each of
    /// which waited for the server's `Retry-After`.
    #[error("throttled by the API server (429) on all {attempts} attempts")]
    Throttled {
        /// How many requests were made.
        attempts: u32,
    },
    /// No answer within the fetch timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed (refused, reset, TLS, ...).
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer was not a valid object of this type.
    #[error("invalid response body: {0}")]
    Decode(String),
    /// The fetch this read shared with others (singleflight) panicked, in the fetcher
    /// (a panicking `strip` function, say) or while its body was being cached; nothing
    /// was cached. The panic itself reached the caller that ran the fetch.
    #[error("the shared fetch of this object panicked; nothing was cached")]
    LeaderPanicked,
    /// The namespace or name cannot name a Kubernetes object, so no request was made.
    /// A namespace must be a DNS label (lowercase letters, digits and `-`, at most 63
    /// characters, starting and ending with a letter or digit); a name must not be
    /// empty, `.` or `..` and must not contain `/` or `%`, which the API server refuses
    /// in every object's name. Every other character is sent percent-encoded, as one
    /// path segment, so a name can only ever name itself.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidName {
        /// `"namespace"` or `"name"`.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The API server answered with a body of another object than the one asked for
    /// (a misrouting proxy or aggregated API server). The body is neither served nor
    /// cached.
    #[error("asked for {asked}, the API server answered with {got}")]
    WrongObject {
        /// `namespace/name` as asked.
        asked: String,
        /// `namespace/name` of the body received.
        got: String,
    },
}
