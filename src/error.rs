//! The crate's error type.

use std::error::Error;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
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
    /// [`MemoryStore::apply`](crate::MemoryStore::apply): the change at position `item`
    /// of the batch (counted from 0) was refused, and nothing of the batch was applied.
    Apply {
        /// The refused change's position in the batch (a `u32`, which keeps every
        /// error small; a batch of more than `u32::MAX` changes reports `u32::MAX`).
        item: u32,
    },
    /// Extracting keys from an object with an [`Indexer`](crate::Indexer).
    Index,
    /// Fetching an object's body from the API server (the on-demand tier).
    Fetch,
    /// Loading a configuration.
    Config,
    /// Parsing or converting a label [`Selector`](crate::Selector), or a query by one.
    Select,
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
            Operation::Apply { item } => return write!(f, "apply (change {item} of the batch)"),
            Operation::Index => "index",
            Operation::Fetch => "fetch",
            Operation::Config => "config",
            Operation::Select => "select",
        })
    }
}

/// Why an operation failed.
///
/// Its message is complete on its own (a fetch error's says what the API server or the
/// connection said); [`source`](Error::source) returns the underlying error where there
/// is one, so a caller can inspect the [`kube::Error`] itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A store needs at least one key component. Fix: pass `num_keys >= 1`.
    ZeroKeys,
    /// A store (and an indexer) takes at most [`MAX_KEYS`](crate::MAX_KEYS) key
    /// components. Fix: index by fewer fields; a composite key of more than a handful of
    /// components is better split into a secondary lookup.
    TooManyKeys {
        /// [`MAX_KEYS`](crate::MAX_KEYS).
        max: usize,
        /// How many were asked for.
        given: usize,
    },
    /// `add`, `update`, `delete` and `replace` take exactly `num_keys` components.
    /// Fix: pass one component for each entry of the store's `index_by`.
    KeyCount {
        /// The store's `num_keys`.
        expected: usize,
        /// How many were given.
        given: usize,
    },
    /// `get` takes between 1 and `num_keys` components (fewer is a prefix lookup).
    /// Fix: pass at least one component and no more than the store has.
    PrefixLength {
        /// The store's `num_keys`.
        max: usize,
        /// How many were given.
        given: usize,
    },
    /// A composite key whose encoding (its components, with two bytes after each and
    /// two for each NUL byte in them) is longer than the exact-key index holds
    /// ([`u32::MAX`] bytes). No Kubernetes object has fields that long. Fix: index by
    /// shorter fields.
    KeyTooLong {
        /// The most bytes a key's encoding may have.
        max: usize,
        /// How many this one has.
        given: usize,
    },
    /// A builder setting is out of range; the message says which and what is valid.
    InvalidSetting(String),
    /// A lookup named a secondary index the store does not have. Fix: use one of
    /// `known` (the names given to the builder's `index`, or under `indexes:` in the
    /// configuration).
    UnknownIndex {
        /// The name asked for.
        name: String,
        /// The store's secondary indexes, in the order they were configured.
        known: Vec<String>,
    },
    /// A field path could not be parsed; the message says where and why.
    InvalidFieldPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An object lacks a field that a key is extracted from (and the indexer is not
    /// configured to use an empty component for missing fields).
    MissingField {
        /// The path as given.
        path: String,
        /// The object's `namespace/name`.
        object: String,
    },
    /// A field holds an object or array, which cannot be a key component.
    NotAScalar {
        /// The path as given.
        path: String,
        /// The object's `namespace/name`.
        object: String,
        /// What was found ("an object", "an array").
        found: &'static str,
    },
    /// An object would be under more entries of a secondary index than one object may
    /// be: a key with several multi-valued (`[*]`) components is the product of their
    /// values, and past [`MAX_ENTRIES_PER_OBJECT`](crate::MAX_ENTRIES_PER_OBJECT) the
    /// indexer refuses the object rather than build them. The count is taken before any
    /// entry is built, so an object with a million would-be entries costs nothing but
    /// reading its values. (Boxed: it is rare, and every other error stays small.)
    ///
    /// Fix: index fewer multi-valued paths together (split the index in two, each with
    /// one `[*]` path), or index by paths with fewer values per object.
    TooManyValues(Box<TooManyValues>),
    /// The object could not be turned into JSON to read a non-metadata field.
    Serialize {
        /// The object's `namespace/name`.
        object: String,
        /// serde_json's error (also the [`source`](Error::source)).
        source: Cause<serde_json::Error>,
    },
    /// The on-demand tier could not fetch an object's body. The object is not dropped
    /// from the result silently: the whole `get` fails with this cause. (An object the
    /// API server answers `404 Not Found` for is not an error: it is left out.)
    Fetch {
        /// The object's `namespace/name`.
        object: String,
        /// What the API server or the connection said (also the
        /// [`source`](Error::source)). Every read that waited on the same fetch
        /// (singleflight) gets this same `Arc`.
        cause: Arc<FetchError>,
    },
    /// An object's identity metadata (`metadata` itself, or its `namespace`, `name`,
    /// `uid` or `resourceVersion`) is present but not of the type Kubernetes gives it,
    /// for example `"name": 5` in a `serde_json::Value`. Such an object is refused
    /// rather than read as if the field were empty, which would merge distinct objects
    /// into one identity. Fix: give the field as a string (or `null`, or leave it out).
    InvalidMetadata {
        /// The field, as `metadata.name`.
        field: &'static str,
        /// What was found ("a number", "a boolean", "a list", "a mapping").
        found: &'static str,
    },
    /// `get_one` found several objects under a key it expected to be unique.
    /// Fix: use `get`, which returns them all, or index by a key that is unique.
    NotUnique {
        /// How many objects are under the key.
        found: usize,
    },
    /// An on-demand store scoped to one namespace was given an object of another.
    /// Fix: scope the store to all namespaces, or filter the watch by namespace.
    OutOfScope {
        /// The object's `namespace/name`.
        object: String,
        /// The store's namespace.
        scope: String,
    },
    /// A label selector is not valid Kubernetes syntax, or names a label key or value
    /// that Kubernetes would refuse, or (a structured selector) uses an unknown operator
    /// or the wrong number of values for its operator. The message says where and what
    /// was expected. Fix: write it as `kubectl get -l` takes it
    /// (`app=web,tier in (a,b),!canary`); see [`Selector`](crate::Selector).
    InvalidSelector {
        /// The selector string as given; for a structured selector, the item at fault:
        /// `matchLabels["app"]` or `matchExpressions[1]` of a `LabelSelector`,
        /// `expressions[1]` of kube's `Selector`, `requirements[1]` of
        /// [`Selector::from_requirements`](crate::Selector::from_requirements).
        selector: String,
        /// For a selector string, the byte offset (from 0) in `selector` at which it
        /// is wrong, or its length if it ended too early; `None` for a structured one.
        /// A `u32`, which keeps every error small (an offset past `u32::MAX` reports
        /// `u32::MAX`).
        position: Option<u32>,
        /// What is wrong, and what was expected there.
        reason: String,
    },
}

/// What [`ErrorKind::TooManyValues`] says: which object would be under how many
/// entries of which index, and why (how many values each path has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyValues {
    /// The index's name, when a store reports it;
    /// [`Indexer::key_sets`](crate::Indexer::key_sets) leaves it `None` (an indexer
    /// does not know which index it serves), for the store to fill in.
    pub index: Option<String>,
    /// The object's `namespace/name`.
    pub object: String,
    /// Every path of the index, in order, with how many distinct values the object has
    /// for it.
    pub paths: Vec<(String, usize)>,
    /// The limit, [`MAX_ENTRIES_PER_OBJECT`](crate::MAX_ENTRIES_PER_OBJECT).
    pub limit: usize,
    /// How many entries the object would be under: the product of the counts in
    /// `paths` (`usize::MAX` if that overflows).
    pub found: usize,
}

/// The error every fallible operation of this crate returns: the operation, the keys
/// involved (possibly none) and the cause.
///
/// Its message names all three, for example
/// `add ["default", "a", "b"]: expected 2 key components, got 3`. Keys are printed
/// with Rust string escapes, so keys containing `/`, quotes, NUL or unicode are shown
/// unambiguously.
///
/// [`source`](Error::source) is the kind's: the [`FetchError`] of a failed fetch (whose
/// own source is the [`kube::Error`] of a failed connection), the serializer's error of
/// [`ErrorKind::Serialize`], else `None`.
///
/// Build one with [`StoreError::new`] (a fake [`Store`](crate::Store) in a test, say).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreError {
    /// The operation that failed.
    pub operation: Operation,
    /// The keys the caller passed (empty where the operation took none).
    pub keys: Vec<String>,
    /// Why it failed.
    pub kind: ErrorKind,
}

impl StoreError {
    /// The error of `operation` on `keys`, failed because of `kind`.
    pub fn new<S: AsRef<str>>(operation: Operation, keys: &[S], kind: ErrorKind) -> Self {
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
/// position, not the offending value, and no source (serde's error can quote it).
///
/// [`source`](Error::source) is the [`kube::Error`] of a [`Transport`](Self::Transport)
/// failure, else `None`. A [`Fetch`](crate::Fetch) implementation of your own (a
/// deterministic fetcher for a fuzz target or a loom model) builds any variant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// The API server answered with an error status (other than 404, and other than a
    /// 429 that was retried).
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
    Throttled {
        /// How many requests were made.
        attempts: u32,
    },
    /// No answer within the fetch timeout.
    Timeout(Duration),
    /// The connection failed (refused, reset, TLS, ...), or the request could not be
    /// built: kube's error, kept whole.
    Transport(Cause<kube::Error>),
    /// The answer was not a valid object of this type: serde's category and position.
    Decode(String),
    /// The fetch this read shared with others (singleflight) panicked, in the fetcher
    /// (a panicking `strip` function, say) or while its body was being cached; nothing
    /// was cached. The panic itself reached the caller that ran the fetch.
    LeaderPanicked,
    /// The namespace or name cannot name a Kubernetes object, so no request was made.
    /// A namespace must be a DNS label (lowercase letters, digits and `-`, at most 63
    /// characters, starting and ending with a letter or digit); a name must not be
    /// empty, `.` or `..` and must not contain `/` or `%`, which the API server refuses
    /// in every object's name. Every other character is sent percent-encoded, as one
    /// path segment, so a name can only ever name itself.
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
    WrongObject {
        /// `namespace/name` as asked.
        asked: String,
        /// `namespace/name` of the body received.
        got: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.operation, self.keys, self.kind)
    }
}

impl Error for StoreError {
    /// The kind's source: the kind itself is this error's description, not its cause.
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.kind.source()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::ZeroKeys => {
                f.write_str("a store needs at least one key component, got num_keys = 0")
            }
            ErrorKind::TooManyKeys { max, given } => write!(
                f,
                "a store takes at most {max} key components, got num_keys = {given}"
            ),
            ErrorKind::KeyCount { expected, given } => {
                write!(f, "expected {expected} key components, got {given}")
            }
            ErrorKind::PrefixLength { max, given } => {
                write!(f, "expected 1..={max} key components, got {given}")
            }
            ErrorKind::KeyTooLong { max, given } => write!(
                f,
                "a key's encoding takes at most {max} bytes, this one {given}"
            ),
            ErrorKind::InvalidSetting(message) => write!(f, "invalid setting: {message}"),
            ErrorKind::UnknownIndex { name, known } if known.is_empty() => write!(
                f,
                "no secondary index named {name:?}: this store has none (add one with \
                 the builder's index(), or under indexes: in the configuration)"
            ),
            ErrorKind::UnknownIndex { name, known } => write!(
                f,
                "no secondary index named {name:?}: this store's are {}",
                known.join(", ")
            ),
            ErrorKind::InvalidFieldPath { path, reason } => {
                write!(f, "invalid field path {path:?}: {reason}")
            }
            ErrorKind::MissingField { path, object } => {
                write!(f, "field {path:?} is missing in object {object}")
            }
            ErrorKind::NotAScalar {
                path,
                object,
                found,
            } => write!(
                f,
                "field {path:?} of object {object} is {found}, not a string, number or boolean"
            ),
            ErrorKind::TooManyValues(e) => e.fmt(f),
            ErrorKind::Serialize { object, source } => write!(
                f,
                "object {object} could not be serialised to read its fields: {source}"
            ),
            ErrorKind::Fetch { object, cause } => write!(f, "object {object}: {cause}"),
            ErrorKind::InvalidMetadata { field, found } => write!(
                f,
                "{field} is {found}, not a string: the store cannot tell this object's identity"
            ),
            ErrorKind::NotUnique { found } => {
                write!(
                    f,
                    "{found} objects share this key; get_one expects at most one"
                )
            }
            ErrorKind::OutOfScope { object, scope } => {
                write!(
                    f,
                    "object {object} is outside the store's namespace {scope:?}"
                )
            }
            ErrorKind::InvalidSelector {
                selector,
                position: Some(position),
                reason,
            } => write!(
                f,
                "invalid label selector {selector:?} at byte {position}: {reason}"
            ),
            ErrorKind::InvalidSelector {
                selector,
                position: None,
                reason,
            } => write!(f, "invalid label selector at {selector}: {reason}"),
        }
    }
}

impl fmt::Display for TooManyValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            index,
            object,
            paths,
            limit,
            found,
        } = self;
        write!(f, "object {object} would be under {found} entries of ")?;
        match index {
            Some(index) => write!(f, "index {index:?}")?,
            None => f.write_str("a multi-valued index")?,
        }
        f.write_str(" (")?;
        for (i, (path, values)) in paths.iter().enumerate() {
            let sep = if i == 0 { "" } else { " × " };
            let noun = if *values == 1 { "value" } else { "values" };
            write!(f, "{sep}{values} {noun} of {path:?}")?;
        }
        write!(
            f,
            "), more than the {limit} one object may be under: index fewer multi-valued \
             ([*]) paths together, or by paths with fewer values"
        )
    }
}

impl Error for ErrorKind {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ErrorKind::Serialize { source, .. } => Some(source.get()),
            ErrorKind::Fetch { cause, .. } => Some(&**cause),
            _ => None,
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Api {
                code,
                reason,
                message,
            } => write!(f, "the API server answered {code} {reason}: {message}"),
            FetchError::Throttled { attempts } => write!(
                f,
                "throttled by the API server (429) on all {attempts} attempts"
            ),
            FetchError::Timeout(after) => write!(f, "no answer within {after:?}"),
            FetchError::Transport(source) => write!(f, "transport error: {source}"),
            FetchError::Decode(message) => write!(f, "invalid response body: {message}"),
            FetchError::LeaderPanicked => {
                f.write_str("the shared fetch of this object panicked; nothing was cached")
            }
            FetchError::InvalidName {
                field,
                value,
                reason,
            } => write!(f, "invalid {field} {value:?}: {reason}"),
            FetchError::WrongObject { asked, got } => {
                write!(f, "asked for {asked}, the API server answered with {got}")
            }
        }
    }
}

impl Error for FetchError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            FetchError::Transport(source) => Some(source.get()),
            _ => None,
        }
    }
}

/// An underlying error (kube's, serde's) kept whole inside one of this crate's errors,
/// behind an `Arc` so that the error stays cheap to clone.
///
/// It derefs to the error itself, which is also what the enclosing error's
/// [`source`](Error::source) returns. Two causes compare equal when their messages do
/// (the errors they hold have no equality of their own), so that [`StoreError`] keeps
/// `PartialEq` for tests and differential fuzz targets.
pub struct Cause<E>(Arc<E>);

impl<E> Cause<E> {
    /// Wraps `error`.
    pub fn new(error: E) -> Self {
        Self(Arc::new(error))
    }

    /// The error itself.
    pub fn get(&self) -> &E {
        &self.0
    }
}

impl<E> From<E> for Cause<E> {
    fn from(error: E) -> Self {
        Self::new(error)
    }
}

impl<E> Clone for Cause<E> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<E> Deref for Cause<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.0
    }
}

impl<E: fmt::Debug> fmt::Debug for Cause<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: fmt::Display> fmt::Display for Cause<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: fmt::Display> PartialEq for Cause<E> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl<E: fmt::Display> Eq for Cause<E> {}
