//! The indexer: turns an object into its key components by field paths.
//!
//! Paths are parsed once, when the indexer is built; an invalid path is an error then,
//! never per object. Syntax:
//!
//! - dotted field names: `metadata.namespace`, `spec.ingressClassName`;
//! - brackets with a quoted key for keys containing dots or other characters:
//!   `metadata.labels['app.kubernetes.io/name']` (single or double quotes; a backslash
//!   escapes the next character);
//! - brackets with a number for an array element: `spec.rules[0].host`;
//! - `[*]` for every element of an array: `spec.tls[*].secretName`,
//!   `metadata.ownerReferences[*].uid`, `spec.tls[*].hosts[*]` (nested: every host of
//!   every entry), `metadata.finalizers[*]` (trailing: every element of an array of
//!   scalars). Like `[0]`, it follows a field or another bracket (`a[*]b`, `a.[*]` and a
//!   leading `[*]` are errors). A path with `[*]` is *multi-valued*: an object has any
//!   number of values for it, which only [`Indexer::key_sets`] (a secondary index)
//!   reads; [`Indexer::key_list`] (a primary key, one per object) refuses it.
//!
//! Values: strings as they are, integers as integers (`1`), other numbers as JSON
//! prints them (`1.5`), booleans as `true`/`false`. Objects and arrays are errors.
//! `metadata.namespace`, `metadata.name` and `metadata.uid` read as `""` when absent
//! (a cluster-scoped object has no namespace). Any other missing field (or `null`) is
//! an error by default, or an empty component with [`Indexer::missing_as_empty`]
//! ([`Indexer::key_sets`] has its own rules for missing values; see there). A field
//! or an index on the way that does not apply (`spec.a` where `spec` is a string,
//! `spec[0]` or `spec[*]` where `spec` is not an array) reads as missing.
//!
//! Metadata paths (`namespace`, `name`, `uid`, `resourceVersion`, `labels[..]`,
//! `annotations[..]`, `finalizers[*]` and `ownerReferences[*]` followed by `.uid`,
//! `.name`, `.kind`, `.apiVersion`, `.controller` or `.blockOwnerDeletion`) read the
//! metadata directly through [`Object`]'s accessors. Other paths are read through
//! [`Object::for_each_value_at`]: a typed object (any `kube::Resource`) serialises only
//! the values at the path's end, following its `Serialize` implementation down the path
//! and skipping every other field, and a `serde_json::Value` is walked where it is;
//! both give exactly the values of the object's JSON form. (An [`Object`]
//! implementation of one's own that keeps the default reads its
//! [`to_json`](Object::to_json) once per such path.) In an untyped JSON object, those
//! accessors read a metadata value of the wrong type (`"uid": 5`, a finalizer that is
//! not a string) as absent, where a generic path would read `5` or report
//! [`ErrorKind::NotAScalar`].

use serde_json::Value;
use std::borrow::Cow;

use crate::error::{ErrorKind, Operation, StoreError, TooManyValues};
use crate::feed::keys::Keys;
use crate::object::{MetaView, Object, OwnerRef, PathStep};

/// The most entries of one secondary index an object may be under: 256. A key with
/// several multi-valued (`[*]`) components is the product of their values (an Ingress
/// with 20 TLS hosts and 20 rules indexed by both is under 400), and
/// [`Indexer::key_sets`] refuses an object past this bound with
/// [`ErrorKind::TooManyValues`], counting before it builds a single key.
pub const MAX_ENTRIES_PER_OBJECT: usize = 256;

/// What to do when an object lacks a field a key is read from: in the configuration,
/// `missing_fields: error` (the default) or `missing_fields: empty`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MissingField {
    /// Return [`ErrorKind::MissingField`] (the default): the watch logs the object and
    /// skips it.
    #[default]
    Error,
    /// Use an empty string as the component.
    Empty,
}

/// Extracts key components from objects by field paths parsed once.
///
/// # Examples
/// ```
/// use k8s_openapi::api::core::v1::Service;
/// use k8s_store::Indexer;
///
/// let indexer = Indexer::new(["metadata.namespace", "metadata.labels['app.kubernetes.io/name']"])?;
/// let mut svc = Service::default();
/// svc.metadata.namespace = Some("shop".into());
/// svc.metadata.labels = Some([("app.kubernetes.io/name".to_string(), "cart".to_string())].into());
/// assert_eq!(indexer.keys(&svc)?, ["shop", "cart"]);
/// # Ok::<(), k8s_store::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Indexer {
    paths: Vec<FieldPath>,
    missing: MissingField,
    multi: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldPath {
    text: String,
    kind: PathKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathKind {
    Namespace,
    Name,
    Uid,
    ResourceVersion,
    Label(String),
    Annotation(String),
    /// `metadata.ownerReferences[*].<field>`, read by [`Object::for_each_owner_reference`].
    OwnerReferences(OwnerField),
    /// `metadata.finalizers[*]`, read by [`Object::for_each_finalizer`].
    Finalizers,
    Json(Vec<PathStep>),
}

impl PathKind {
    /// Whether the path has `[*]`: any number of values per object.
    fn is_multi(&self) -> bool {
        match self {
            PathKind::OwnerReferences(_) | PathKind::Finalizers => true,
            PathKind::Json(steps) => steps.contains(&PathStep::Each),
            _ => false,
        }
    }
}

/// A field of an owner reference, as `metadata.ownerReferences[*].<field>` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerField {
    ApiVersion,
    Kind,
    Name,
    Uid,
    Controller,
    BlockOwnerDeletion,
}

impl OwnerField {
    fn parse(field: &str) -> Option<Self> {
        Some(match field {
            "apiVersion" => Self::ApiVersion,
            "kind" => Self::Kind,
            "name" => Self::Name,
            "uid" => Self::Uid,
            "controller" => Self::Controller,
            "blockOwnerDeletion" => Self::BlockOwnerDeletion,
            _ => return None,
        })
    }

    /// The field's value in `r`, as JSON would print it.
    fn read<'a>(self, r: &OwnerRef<'a>) -> Option<&'a str> {
        let flag = |b: Option<bool>| b.map(|b| if b { "true" } else { "false" });
        match self {
            Self::ApiVersion => r.api_version,
            Self::Kind => r.kind,
            Self::Name => r.name,
            Self::Uid => r.uid,
            Self::Controller => flag(r.controller),
            Self::BlockOwnerDeletion => flag(r.block_owner_deletion),
        }
    }
}

/// One step of a parsed field path, as the configuration takes it (`ignore_fields`):
/// single-valued paths only. The indexer's own steps ([`PathStep`]) also have `[*]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A field of an object (dotted or a quoted bracket key).
    Field(String),
    /// An element of an array (`[0]`).
    Index(usize),
}

/// Who an object is, for messages (`namespace/name`), computed only for an error.
type Who<'a> = &'a dyn Fn() -> String;

impl Indexer {
    /// An indexer reading one key component from each path, in order.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidFieldPath`] for the first path that does not parse,
    /// [`ErrorKind::InvalidSetting`] for an empty list of paths, and
    /// [`ErrorKind::TooManyKeys`] for more than [`MAX_KEYS`](crate::MAX_KEYS) (no store
    /// could take its keys).
    pub fn new<I, S>(paths: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let paths = paths
            .into_iter()
            .map(|p| parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|kind| StoreError {
                operation: Operation::Build,
                keys: Vec::new(),
                kind,
            })?;
        if paths.is_empty() {
            return Err(StoreError::build(ErrorKind::InvalidSetting(
                "index_by is empty: give at least one field path, for example metadata.namespace"
                    .into(),
            )));
        }
        if paths.len() > crate::MAX_KEYS {
            return Err(StoreError::build(ErrorKind::TooManyKeys {
                max: crate::MAX_KEYS,
                given: paths.len(),
            }));
        }
        let multi = paths.iter().any(|p| p.kind.is_multi());
        Ok(Self {
            paths,
            missing: MissingField::Error,
            multi,
        })
    }

    /// Uses an empty component, instead of an error, for a missing field.
    ///
    /// Defaults to: [`MissingField::Error`].
    #[must_use]
    pub fn missing_as_empty(mut self) -> Self {
        self.missing = MissingField::Empty;
        self
    }

    /// The policy for missing fields.
    pub fn missing_field(&self) -> MissingField {
        self.missing
    }

    /// How many components each key has (the store's `num_keys`).
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Always false: an indexer has at least one path.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The paths as given.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(|p| p.text.as_str())
    }

    /// Whether any path has `[*]`, so that an object may have any number of keys: such
    /// an indexer serves a secondary index through [`key_sets`](Self::key_sets), and
    /// its [`key_list`](Self::key_list) is an error.
    pub fn is_multi_valued(&self) -> bool {
        self.multi
    }

    /// The key components of `obj`, as strings (what a store's methods take as a slice).
    ///
    /// # Errors
    /// As [`key_list`](Self::key_list).
    pub fn keys<K: Object<M>, M>(&self, obj: &K) -> Result<Vec<String>, StoreError> {
        self.key_list(obj).map(|k| k.to_vec())
    }

    /// The key components of `obj` in one [`Keys`] buffer: what a watch's feeder
    /// extracts for every event and hands to its store (no allocation for two components
    /// of up to 40 bytes together; see [`Keys`]).
    ///
    /// # Errors
    /// [`ErrorKind::MissingField`], [`ErrorKind::NotAScalar`] or
    /// [`ErrorKind::Serialize`], naming the path and the object's `namespace/name`;
    /// [`ErrorKind::InvalidFieldPath`] for every object if a path is multi-valued
    /// ([`is_multi_valued`](Self::is_multi_valued)): a primary key has exactly one
    /// value per object, and this method never picks one of several silently. Read
    /// such an indexer's keys with [`key_sets`](Self::key_sets).
    pub fn key_list<K: Object<M>, M>(&self, obj: &K) -> Result<Keys, StoreError> {
        let who = || meta(obj).display();
        if let Some(p) = self.paths.iter().find(|p| p.kind.is_multi()) {
            return Err(index_error(multi_valued(p)));
        }
        let mut out = Keys::new();
        let mut first_error = None;
        for p in &self.paths {
            let found = match single(p, obj, &who) {
                Ok(found) => found,
                Err(e) => {
                    defer(&mut first_error, e).map_err(index_error)?;
                    continue;
                }
            };
            match (found, self.missing) {
                (Some(v), _) => out.push(&v),
                (None, MissingField::Empty) => out.push(""),
                (None, MissingField::Error) => defer(
                    &mut first_error,
                    ErrorKind::MissingField {
                        path: p.text.clone(),
                        object: who(),
                    },
                )
                .map_err(index_error)?,
            }
        }
        match first_error {
            Some(e) => Err(index_error(e)),
            None => Ok(out),
        }
    }

    /// Every distinct key of `obj`: what a secondary index files the object under, once
    /// per key. Each path gives a component's distinct values (one for a single-valued
    /// path, any number for a `[*]` path), and the keys are their product, so an
    /// Ingress indexed by `["metadata.namespace", "spec.tls[*].secretName"]` with TLS
    /// Secrets `a`, `b` and `a` again has the keys `[ns, a]` and `[ns, b]`.
    ///
    /// - **Order.** Sorted by components, compared component by component as bytes
    ///   (the first component first), so the result is the same for any order of the
    ///   values in the object.
    /// - **No duplicates.** A value that appears several times for one path (two TLS
    ///   entries naming one Secret, `1` and `"1"`) counts once, so every key is
    ///   distinct.
    /// - **No values, no keys.** A path with no values makes the product empty, and the
    ///   result is `Ok(vec![])`: the object is in no entry of the index, which is not an
    ///   error, whatever the [`MissingField`] policy. A path has no values when its
    ///   array is empty, missing or `null`, when no element has the field after the
    ///   `[*]` (or has it `null`), and, for a single-valued path, when its field is
    ///   missing or `null` under [`MissingField::Error`]. Under
    ///   [`MissingField::Empty`] a missing single-valued field is the component `""`,
    ///   as in [`key_list`](Self::key_list), but a multi-valued path with no values
    ///   still has none (an empty list is not a list of one empty string, and an
    ///   index of TLS Secrets should not list every Ingress without TLS under `""`).
    /// - **Bounded.** The number of keys is counted, as the product of the number of
    ///   values of each path, before any key is built; past
    ///   [`MAX_ENTRIES_PER_OBJECT`] it is an error, so an object with 1,000 values
    ///   for each of two paths costs reading its 2,000 values, never a million keys.
    ///
    /// # Examples
    /// ```
    /// use k8s_store::Indexer;
    /// use serde_json::json;
    ///
    /// let indexer = Indexer::new(["metadata.namespace", "spec.tls[*].hosts[*]"])?;
    /// let ingress = json!({
    ///     "metadata": {"namespace": "shop", "name": "web"},
    ///     "spec": {"tls": [{"hosts": ["b.example", "a.example"]}, {"hosts": ["a.example"]}]},
    /// });
    /// assert_eq!(indexer.key_sets(&ingress)?, [["shop", "a.example"], ["shop", "b.example"]]);
    ///
    /// let no_tls = json!({"metadata": {"namespace": "shop", "name": "plain"}, "spec": {}});
    /// assert!(indexer.key_sets(&no_tls)?.is_empty());
    /// # Ok::<(), k8s_store::StoreError>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::NotAScalar`] for a value (or an element of a `[*]`) that is an
    /// object or an array, [`ErrorKind::Serialize`] if the object cannot be read as
    /// JSON, and [`ErrorKind::TooManyValues`] (with `index: None`, for the store to
    /// fill in) past [`MAX_ENTRIES_PER_OBJECT`] keys; each names the object's
    /// `namespace/name`.
    pub fn key_sets<K: Object<M>, M>(&self, obj: &K) -> Result<Vec<Keys>, StoreError> {
        let who = || meta(obj).display();
        let mut values = Vec::with_capacity(self.paths.len());
        let mut first_error = None;
        for p in &self.paths {
            match self.values(p, obj, &who) {
                Ok(mut v) => {
                    v.sort_unstable();
                    v.dedup();
                    values.push(v);
                }
                Err(e) => defer(&mut first_error, e).map_err(index_error)?,
            }
        }
        if let Some(e) = first_error {
            return Err(index_error(e));
        }
        if values.iter().any(Vec::is_empty) {
            return Ok(Vec::new());
        }
        // Count first, build after: the product is checked against the bound before a
        // single key exists (saturating: the counts are non-zero, so a saturated
        // product is still past any bound).
        let found = values.iter().fold(1usize, |n, v| n.saturating_mul(v.len()));
        if found > MAX_ENTRIES_PER_OBJECT {
            return Err(index_error(ErrorKind::TooManyValues(Box::new(
                TooManyValues {
                    index: None,
                    object: who(),
                    paths: self
                        .paths
                        .iter()
                        .zip(&values)
                        .map(|(p, v)| (p.text.clone(), v.len()))
                        .collect(),
                    limit: MAX_ENTRIES_PER_OBJECT,
                    found,
                },
            ))));
        }
        Ok(product(&values, found))
    }

    /// The values of one path for [`key_sets`](Self::key_sets), in no order and
    /// possibly repeated.
    fn values<'a, K: Object<M>, M>(
        &self,
        p: &FieldPath,
        obj: &'a K,
        who: Who<'_>,
    ) -> Result<Vec<Cow<'a, str>>, ErrorKind> {
        let mut out = Vec::new();
        match &p.kind {
            PathKind::OwnerReferences(field) => {
                obj.for_each_owner_reference(&mut |r| {
                    if let Some(v) = field.read(&r) {
                        // Copied: what the visitor is given lives only for the call
                        // (the trait's default visits a temporary JSON value).
                        out.push(Cow::Owned(v.to_owned()));
                    }
                });
            }
            PathKind::Finalizers => obj.for_each_finalizer(&mut |f| {
                out.push(Cow::Owned(f.to_owned()));
            }),
            PathKind::Json(steps) if p.kind.is_multi() => {
                json_values(steps, p, obj, who, &mut |v| out.push(v))?;
            }
            _ => match (single(p, obj, who)?, self.missing) {
                (Some(v), _) => out.push(v),
                (None, MissingField::Empty) => out.push(Cow::Borrowed("")),
                (None, MissingField::Error) => {}
            },
        }
        Ok(out)
    }
}

/// A [`StoreError`] of [`Operation::Index`].
fn index_error(kind: ErrorKind) -> StoreError {
    StoreError {
        operation: Operation::Index,
        keys: Vec::new(),
        kind,
    }
}

fn meta<K: Object<M>, M>(obj: &K) -> MetaView<'_> {
    MetaView {
        namespace: obj.namespace(),
        name: obj.name(),
        uid: obj.uid(),
    }
}

/// What [`Indexer::key_list`] says of a multi-valued path.
fn multi_valued(p: &FieldPath) -> ErrorKind {
    ErrorKind::InvalidFieldPath {
        path: p.text.clone(),
        reason: "`[*]` is multi-valued: only a secondary index can use it (its keys are \
                 Indexer::key_sets); a primary key has exactly one value per object"
            .into(),
    }
}

/// The value of a single-valued path, `None` if it is missing or `null`.
fn single<'a, K: Object<M>, M>(
    p: &FieldPath,
    obj: &'a K,
    who: Who<'_>,
) -> Result<Option<Cow<'a, str>>, ErrorKind> {
    Ok(match &p.kind {
        PathKind::Namespace => Some(obj.namespace().into()),
        PathKind::Name => Some(obj.name().into()),
        PathKind::Uid => Some(obj.uid().into()),
        PathKind::ResourceVersion => obj.resource_version().map(Into::into),
        PathKind::Label(k) => obj.label(k).map(Into::into),
        PathKind::Annotation(k) => obj.annotation(k).map(Into::into),
        PathKind::OwnerReferences(_) | PathKind::Finalizers => return Err(multi_valued(p)),
        PathKind::Json(steps) => {
            // A path without `[*]` (`key_list` refuses those before it gets here)
            // reaches one value at most.
            let mut first = None;
            json_values(steps, p, obj, who, &mut |v| {
                first.get_or_insert(v);
            })?;
            first
        }
    })
}

/// Keeps the first error other than [`ErrorKind::Serialize`] for after every path has
/// been read, and returns a `Serialize` error at once: an object that cannot be
/// serialised is reported as such whichever path comes first, as when the indexer
/// serialised the whole object before it read any path.
fn defer(first: &mut Option<ErrorKind>, e: ErrorKind) -> Result<(), ErrorKind> {
    match e {
        ErrorKind::Serialize { .. } => Err(e),
        e => {
            first.get_or_insert(e);
            Ok(())
        }
    }
}

/// Calls `push` with the key component of every value `steps` reach in `obj` (read
/// through [`Object::for_each_value_at`]), `null` left out.
///
/// # Errors
/// [`ErrorKind::Serialize`] if the object cannot be read, else
/// [`ErrorKind::NotAScalar`] for the first value in document order that is an object
/// or an array.
fn json_values<'a, K: Object<M>, M>(
    steps: &[PathStep],
    p: &FieldPath,
    obj: &'a K,
    who: Who<'_>,
    push: &mut dyn FnMut(Cow<'a, str>),
) -> Result<(), ErrorKind> {
    let mut not_scalar = None;
    obj.for_each_value_at(steps, &mut |v| {
        if not_scalar.is_some() {
            return;
        }
        match scalar_of(v, p, who) {
            Ok(Some(v)) => push(v),
            Ok(None) => {}
            Err(e) => not_scalar = Some(e),
        }
    })
    .map_err(|e| ErrorKind::Serialize {
        object: who(),
        source: e.into(),
    })?;
    not_scalar.map_or(Ok(()), Err)
}

/// [`scalar`] of a value that may be owned: an owned string is moved, not copied.
fn scalar_of<'v>(
    v: Cow<'v, Value>,
    p: &FieldPath,
    who: Who<'_>,
) -> Result<Option<Cow<'v, str>>, ErrorKind> {
    match v {
        Cow::Borrowed(v) => scalar(v, p, who),
        Cow::Owned(Value::String(s)) => Ok(Some(Cow::Owned(s))),
        Cow::Owned(v) => Ok(scalar(&v, p, who)?.map(|s| Cow::Owned(s.into_owned()))),
    }
}

/// A leaf value as a key component: `None` for `null`, an error for an object or an
/// array.
fn scalar<'v>(
    v: &'v Value,
    p: &FieldPath,
    who: Who<'_>,
) -> Result<Option<Cow<'v, str>>, ErrorKind> {
    let found = match v {
        Value::Null => return Ok(None),
        Value::String(s) => return Ok(Some(s.as_str().into())),
        Value::Bool(b) => return Ok(Some(if *b { "true" } else { "false" }.into())),
        Value::Number(n) => return Ok(Some(n.to_string().into())),
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
    };
    Err(ErrorKind::NotAScalar {
        path: p.text.clone(),
        object: who(),
        found,
    })
}

/// The keys of the product of `values` (each non-empty, sorted and distinct), `count`
/// of them (the product of their lengths), in lexicographic order: the last component
/// varies fastest, like an odometer's last digit.
fn product(values: &[Vec<Cow<'_, str>>], count: usize) -> Vec<Keys> {
    let mut out = Vec::with_capacity(count);
    let mut at = vec![0usize; values.len()];
    loop {
        // In range: `at[c] < values[c].len()` holds for every `c` (each list is
        // non-empty, and the odometer below wraps each digit at its list's length).
        out.push(values.iter().zip(&at).map(|(v, &i)| &*v[i]).collect());
        let mut c = values.len();
        loop {
            if c == 0 {
                return out;
            }
            c -= 1;
            at[c] += 1;
            if at[c] < values[c].len() {
                break;
            }
            at[c] = 0;
        }
    }
}

/// Parses `text` with the indexer's syntax into its segments, fast paths included
/// (`metadata.labels['a.b']` is `metadata`, `labels`, `a.b`). Used by the configuration
/// to validate and compile `ignore_fields` and to compare them with `index_by`.
///
/// A path with `[*]` is an error here ([`Segment`] has no `[*]`): `ignore_fields`
/// removes one value, and `index_by` (a primary key) takes one value per object.
pub(crate) fn parse_path(text: &str) -> Result<Vec<Segment>, ErrorKind> {
    parse_steps(text)?
        .into_iter()
        .map(|s| match s {
            PathStep::Field(f) => Ok(Segment::Field(f)),
            PathStep::Index(i) => Ok(Segment::Index(i)),
            PathStep::Each => Err(ErrorKind::InvalidFieldPath {
                path: text.to_owned(),
                reason: "`[*]` (every element of a list) is multi-valued, and this setting \
                         takes single-valued paths only"
                    .into(),
            }),
        })
        .collect()
}

fn parse(text: &str) -> Result<FieldPath, ErrorKind> {
    let steps = parse_steps(text)?;
    let field = |s: &PathStep, name: &str| matches!(s, PathStep::Field(f) if f == name);
    let kind = match steps.as_slice() {
        [m, PathStep::Field(f)] if field(m, "metadata") => match f.as_str() {
            "namespace" => PathKind::Namespace,
            "name" => PathKind::Name,
            "uid" => PathKind::Uid,
            "resourceVersion" => PathKind::ResourceVersion,
            _ => PathKind::Json(steps),
        },
        [m, l, PathStep::Field(k)] if field(m, "metadata") && field(l, "labels") => {
            PathKind::Label(k.clone())
        }
        [m, a, PathStep::Field(k)] if field(m, "metadata") && field(a, "annotations") => {
            PathKind::Annotation(k.clone())
        }
        [m, o, PathStep::Each, PathStep::Field(f)]
            if field(m, "metadata") && field(o, "ownerReferences") =>
        {
            match OwnerField::parse(f) {
                Some(f) => PathKind::OwnerReferences(f),
                None => PathKind::Json(steps),
            }
        }
        [m, f, PathStep::Each] if field(m, "metadata") && field(f, "finalizers") => {
            PathKind::Finalizers
        }
        _ => PathKind::Json(steps),
    };
    Ok(FieldPath {
        text: text.to_owned(),
        kind,
    })
}

fn parse_steps(text: &str) -> Result<Vec<PathStep>, ErrorKind> {
    let bad = |reason: String| ErrorKind::InvalidFieldPath {
        path: text.to_owned(),
        reason,
    };
    if text.is_empty() {
        return Err(bad("the path is empty".into()));
    }
    let mut steps = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut expect_field = true;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if expect_field {
                    return Err(bad(format!("empty field name at character {i}")));
                }
                expect_field = true;
                i += 1;
                if i == chars.len() {
                    return Err(bad("the path ends with '.'".into()));
                }
            }
            '[' => {
                if steps.is_empty() {
                    return Err(bad("a path must start with a field name".into()));
                }
                if expect_field {
                    return Err(bad(format!(
                        "expected a field name after '.' at character {i}"
                    )));
                }
                let (step, next) = parse_bracket(&chars, i).map_err(bad)?;
                steps.push(step);
                i = next;
                expect_field = false;
            }
            c if expect_field && is_name_char(c) => {
                let start = i;
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
                steps.push(PathStep::Field(chars[start..i].iter().collect()));
                expect_field = false;
            }
            c => return Err(bad(format!("unexpected {c:?} at character {i}"))),
        }
    }
    Ok(steps)
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '$'
}

fn parse_bracket(chars: &[char], open: usize) -> Result<(PathStep, usize), String> {
    let mut i = open + 1;
    match chars.get(i) {
        Some(&q) if q == '\'' || q == '"' => {
            i += 1;
            let mut key = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "unterminated quote opened at character {}",
                            open + 1
                        ));
                    }
                    Some('\\') => {
                        let Some(&c) = chars.get(i + 1) else {
                            return Err("the path ends inside an escape".into());
                        };
                        key.push(c);
                        i += 2;
                    }
                    Some(&c) if c == q => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        key.push(c);
                        i += 1;
                    }
                }
            }
            if chars.get(i) != Some(&']') {
                return Err(format!("expected ']' at character {i}"));
            }
            Ok((PathStep::Field(key), i + 1))
        }
        Some('*') => {
            if chars.get(i + 1) != Some(&']') {
                return Err(format!(
                    "expected ']' at character {}: `[*]` (every element) takes nothing else",
                    i + 1
                ));
            }
            Ok((PathStep::Each, i + 2))
        }
        Some(c) if c.is_ascii_digit() => {
            let start = i;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            if chars.get(i) != Some(&']') {
                return Err(format!("expected ']' at character {i}"));
            }
            let n: String = chars[start..i].iter().collect();
            let n = n.parse().map_err(|_| format!("index {n} is too large"))?;
            Ok((PathStep::Index(n), i + 1))
        }
        _ => Err(format!(
            "expected a quoted key, an index or `*` after '[' at character {open}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::core::DynamicObject;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    /// The indexer of `paths` with every path read from the object's JSON, fast paths
    /// off: the reference the fast paths must agree with.
    fn json_only<const N: usize>(paths: [&str; N]) -> Indexer {
        let mut ix = Indexer::new(paths).unwrap();
        for p in &mut ix.paths {
            p.kind = PathKind::Json(parse_steps(&p.text).unwrap());
        }
        ix
    }

    /// Whether a path of `ix` is read through [`Object::for_each_value_at`] (the
    /// object's JSON form), not through the metadata accessors.
    fn reads_json(ix: &Indexer) -> bool {
        ix.paths.iter().any(|p| matches!(p.kind, PathKind::Json(_)))
    }

    fn sets<K: Object<M>, M>(ix: &Indexer, obj: &K) -> Vec<Vec<String>> {
        ix.key_sets(obj).unwrap().iter().map(Keys::to_vec).collect()
    }

    fn kind_of(path: &str) -> PathKind {
        parse(path).unwrap().kind
    }

    fn f(name: &str) -> PathStep {
        PathStep::Field(name.into())
    }

    #[test]
    fn parses_metadata_fast_paths() {
        let ix = Indexer::new([
            "metadata.namespace",
            "metadata.labels['app.kubernetes.io/name']",
            "metadata.annotations[\"a.b/c\"]",
            "spec.rules[0].host",
        ])
        .unwrap();
        assert_eq!(ix.paths[0].kind, PathKind::Namespace);
        assert_eq!(
            ix.paths[1].kind,
            PathKind::Label("app.kubernetes.io/name".into())
        );
        assert_eq!(ix.paths[2].kind, PathKind::Annotation("a.b/c".into()));
        assert_eq!(
            ix.paths[3].kind,
            PathKind::Json(vec![f("spec"), f("rules"), PathStep::Index(0), f("host")])
        );
        assert!(reads_json(&ix));
        assert!(!ix.is_multi_valued());
    }

    #[test]
    fn parses_each_in_every_position() {
        let json = |steps: Vec<PathStep>| PathKind::Json(steps);
        for (path, want) in [
            (
                "spec.tls[*].secretName",
                json(vec![f("spec"), f("tls"), PathStep::Each, f("secretName")]),
            ),
            (
                "spec.finalizers[*]",
                json(vec![f("spec"), f("finalizers"), PathStep::Each]),
            ),
            (
                "spec.tls[*].hosts[*]",
                json(vec![
                    f("spec"),
                    f("tls"),
                    PathStep::Each,
                    f("hosts"),
                    PathStep::Each,
                ]),
            ),
            (
                "a[*][*]",
                json(vec![f("a"), PathStep::Each, PathStep::Each]),
            ),
            (
                "a[*][2]",
                json(vec![f("a"), PathStep::Each, PathStep::Index(2)]),
            ),
            (
                "a[2][*]",
                json(vec![f("a"), PathStep::Index(2), PathStep::Each]),
            ),
            ("a['x.y'][*]", json(vec![f("a"), f("x.y"), PathStep::Each])),
            ("a[*]['x.y']", json(vec![f("a"), PathStep::Each, f("x.y")])),
            (
                "metadata.ownerReferences[*].uid",
                PathKind::OwnerReferences(OwnerField::Uid),
            ),
            (
                "metadata.ownerReferences[*].name",
                PathKind::OwnerReferences(OwnerField::Name),
            ),
            (
                "metadata.ownerReferences[*].kind",
                PathKind::OwnerReferences(OwnerField::Kind),
            ),
            (
                "metadata.ownerReferences[*].apiVersion",
                PathKind::OwnerReferences(OwnerField::ApiVersion),
            ),
            (
                "metadata.ownerReferences[*].controller",
                PathKind::OwnerReferences(OwnerField::Controller),
            ),
            (
                "metadata.ownerReferences[*].blockOwnerDeletion",
                PathKind::OwnerReferences(OwnerField::BlockOwnerDeletion),
            ),
            ("metadata.finalizers[*]", PathKind::Finalizers),
            // Not fast paths: another field, one element, a deeper path.
            (
                "metadata.ownerReferences[*].other",
                json(vec![
                    f("metadata"),
                    f("ownerReferences"),
                    PathStep::Each,
                    f("other"),
                ]),
            ),
            (
                "metadata.ownerReferences[0].uid",
                json(vec![
                    f("metadata"),
                    f("ownerReferences"),
                    PathStep::Index(0),
                    f("uid"),
                ]),
            ),
            (
                "metadata.finalizers[*].x",
                json(vec![f("metadata"), f("finalizers"), PathStep::Each, f("x")]),
            ),
        ] {
            let kind = kind_of(path);
            assert_eq!(kind, want, "{path}");
            let single = matches!(want, PathKind::Json(ref s) if !s.contains(&PathStep::Each));
            assert_eq!(kind.is_multi(), !single, "{path}");
            let ix = Indexer::new(["metadata.namespace", path]).unwrap();
            assert_eq!(ix.is_multi_valued(), !single, "{path}");
        }
        let fast =
            Indexer::new(["metadata.ownerReferences[*].uid", "metadata.finalizers[*]"]).unwrap();
        assert!(!reads_json(&fast), "fast paths never serialise the object");
    }

    #[test]
    fn rejects_invalid_paths_at_build_time() {
        for bad in [
            "", ".a", "a.", "a..b", "a[", "a['x", "a['x'", "a[x]", "[0]", "a b", "a.[0]",
        ] {
            let err = Indexer::new([bad]).unwrap_err();
            assert!(
                matches!(err.kind, ErrorKind::InvalidFieldPath { .. }),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("invalid field path"), "{err}");
        }
        assert!(matches!(
            Indexer::new(Vec::<String>::new()).unwrap_err().kind,
            ErrorKind::InvalidSetting(_)
        ));
    }

    #[test]
    fn rejects_malformed_each() {
        for (bad, says) in [
            ("a[*", "expected ']' at character 3"),
            ("a[**]", "expected ']' at character 3"),
            ("a[*x]", "expected ']' at character 3"),
            ("a[ *]", "after '[' at character 1"),
            ("a[*]b", "unexpected 'b' at character 4"),
            ("a[*]]", "unexpected ']' at character 4"),
            ("[*]", "must start with a field name"),
            ("[*].a", "must start with a field name"),
            ("a.[*]", "expected a field name after '.'"),
            ("a[*].", "ends with '.'"),
        ] {
            let err = Indexer::new([bad]).unwrap_err();
            let ErrorKind::InvalidFieldPath { path, reason } = &err.kind else {
                panic!("{bad:?}: {err}");
            };
            assert_eq!(path, bad);
            assert!(reason.contains(says), "{bad:?}: {reason}");
        }
    }

    #[test]
    fn configuration_paths_refuse_each() {
        for path in [
            "spec.tls[*].secretName",
            "metadata.finalizers[*]",
            "a[0][*]",
        ] {
            let err = parse_path(path).unwrap_err();
            let ErrorKind::InvalidFieldPath { reason, .. } = &err else {
                panic!("{path}: {err}");
            };
            assert!(reason.contains("single-valued paths only"), "{reason}");
        }
        assert_eq!(
            parse_path("a[0]['b.c']"),
            Ok(vec![
                Segment::Field("a".into()),
                Segment::Index(0),
                Segment::Field("b.c".into())
            ])
        );
    }

    #[test]
    fn extracts_scalars_and_reports_missing_or_composite_fields() {
        let obj = json!({
            "metadata": {"name": "n", "labels": {"a.b/c": "v"}},
            "spec": {"replicas": 3, "ratio": 1.5, "paused": false, "tags": ["x"], "sel": {"k": "v"}, "nil": null}
        });
        let ix = Indexer::new([
            "metadata.namespace",
            "metadata.name",
            "metadata.labels['a.b/c']",
            "spec.replicas",
            "spec.ratio",
            "spec.paused",
            "spec.tags[0]",
        ])
        .unwrap();
        assert_eq!(
            ix.keys(&obj).unwrap(),
            ["", "n", "v", "3", "1.5", "false", "x"]
        );
        // One key, the same, from `key_sets` of a single-valued indexer.
        assert_eq!(ix.key_sets(&obj).unwrap(), [ix.key_list(&obj).unwrap()]);

        let err = Indexer::new(["spec.missing"])
            .unwrap()
            .keys(&obj)
            .unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::MissingField {
                path: "spec.missing".into(),
                object: "n".into()
            }
        );
        let err = Indexer::new(["spec.nil"]).unwrap().keys(&obj).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::MissingField { .. }));
        assert_eq!(
            Indexer::new(["spec.missing"])
                .unwrap()
                .missing_as_empty()
                .keys(&obj)
                .unwrap(),
            [""]
        );
        let err = Indexer::new(["spec.sel"]).unwrap().keys(&obj).unwrap_err();
        assert!(matches!(
            err.kind,
            ErrorKind::NotAScalar {
                found: "an object",
                ..
            }
        ));
        let err = Indexer::new(["spec.tags"]).unwrap().keys(&obj).unwrap_err();
        assert!(matches!(
            err.kind,
            ErrorKind::NotAScalar {
                found: "an array",
                ..
            }
        ));
        let err = Indexer::new(["metadata.labels.missing"])
            .unwrap()
            .keys(&obj)
            .unwrap_err();
        assert!(err.to_string().contains("metadata.labels.missing"), "{err}");
    }

    #[test]
    fn key_list_refuses_multi_valued_paths() {
        let obj = json!({
            "metadata": {"namespace": "ns", "name": "n", "finalizers": ["only"]},
            "spec": {"tls": [{"secretName": "only"}]},
        });
        for path in [
            "spec.tls[*].secretName",
            "metadata.finalizers[*]",
            "metadata.ownerReferences[*].uid",
        ] {
            let ix = Indexer::new(["metadata.namespace", path]).unwrap();
            assert!(ix.is_multi_valued());
            for err in [
                ix.key_list(&obj).unwrap_err(),
                ix.keys(&obj).unwrap_err(),
                ix.clone().missing_as_empty().key_list(&obj).unwrap_err(),
            ] {
                assert_eq!(err.operation, Operation::Index);
                let ErrorKind::InvalidFieldPath { path: at, reason } = &err.kind else {
                    panic!("{path}: {err}");
                };
                assert_eq!(at, path);
                assert!(reason.contains("only a secondary index"), "{reason}");
                assert!(reason.contains("key_sets"), "{reason}");
            }
        }
    }

    #[test]
    fn key_sets_is_the_product_of_distinct_values_in_sorted_order() {
        let obj = json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {
                "tls": [{"secretName": "s2"}, {"secretName": "s1"}],
                "rules": [{"host": "b"}, {"host": "a"}, {"host": "c"}],
            },
        });
        let ix = Indexer::new([
            "metadata.namespace",
            "spec.rules[*].host",
            "spec.tls[*].secretName",
        ])
        .unwrap();
        assert_eq!(
            sets(&ix, &obj),
            [
                ["ns", "a", "s1"],
                ["ns", "a", "s2"],
                ["ns", "b", "s1"],
                ["ns", "b", "s2"],
                ["ns", "c", "s1"],
                ["ns", "c", "s2"],
            ]
        );
        // The order of the values in the object does not matter.
        let mut reversed = obj.clone();
        for field in ["tls", "rules"] {
            if let Some(Value::Array(items)) = reversed["spec"].get_mut(field) {
                items.reverse();
            }
        }
        assert_eq!(sets(&ix, &reversed), sets(&ix, &obj));
    }

    #[test]
    fn duplicate_values_in_one_array_count_once() {
        let obj = json!({
            "metadata": {"name": "n"},
            "spec": {
                "tls": [{"secretName": "a"}, {"secretName": "b"}, {"secretName": "a"}],
                "ports": [80, "80", 443, 80],
                "flags": [true, "true", false],
            },
        });
        let ix = Indexer::new(["spec.tls[*].secretName"]).unwrap();
        assert_eq!(sets(&ix, &obj), [["a"], ["b"]]);
        let ix = Indexer::new(["spec.ports[*]", "spec.tls[*].secretName"]).unwrap();
        assert_eq!(
            sets(&ix, &obj),
            [["443", "a"], ["443", "b"], ["80", "a"], ["80", "b"]]
        );
        let ix = Indexer::new(["spec.flags[*]"]).unwrap();
        assert_eq!(sets(&ix, &obj), [["false"], ["true"]]);
    }

    #[test]
    fn empty_missing_or_null_arrays_give_no_keys_under_either_policy() {
        let obj = json!({
            "metadata": {"namespace": "ns", "name": "n"},
            "spec": {
                "empty": [],
                "nil": null,
                "nulls": [null, null],
                "noField": [{"other": 1}, {"secretName": null}],
                "scalar": "not a list",
                "map": {"a": "b"},
                "full": ["x"],
            },
        });
        for path in [
            "spec.empty[*]",
            "spec.nil[*]",
            "spec.missing[*]",
            "spec.missing[*].secretName",
            "spec.nulls[*]",
            "spec.noField[*].secretName",
            "spec.scalar[*]",
            "spec.map[*]",
            "spec.full[*].x",
            "nothing.here[*]",
        ] {
            for ix in [
                Indexer::new(["metadata.namespace", path, "spec.full[*]"]).unwrap(),
                Indexer::new(["metadata.namespace", path, "spec.full[*]"])
                    .unwrap()
                    .missing_as_empty(),
            ] {
                assert_eq!(ix.key_sets(&obj).unwrap(), Vec::<Keys>::new(), "{path}");
            }
        }
    }

    #[test]
    fn missing_single_valued_fields_give_no_keys_or_the_empty_component() {
        let obj = json!({
            "metadata": {"name": "n", "finalizers": ["f"]},
            "spec": {"nil": null},
        });
        for path in [
            "spec.missing",
            "spec.nil",
            "metadata.labels['x']",
            "metadata.resourceVersion",
        ] {
            let ix = Indexer::new([path, "metadata.finalizers[*]"]).unwrap();
            assert!(ix.key_sets(&obj).unwrap().is_empty(), "{path}");
            assert_eq!(sets(&ix.missing_as_empty(), &obj), [["", "f"]], "{path}");
        }
        // The identity fields read as "" when absent, whatever the policy.
        let ix = Indexer::new(["metadata.namespace", "metadata.finalizers[*]"]).unwrap();
        assert_eq!(sets(&ix, &obj), [["", "f"]]);
    }

    #[test]
    fn nested_each_reads_every_element_of_every_element() {
        let obj = json!({
            "metadata": {"name": "n"},
            "spec": {
                "tls": [
                    {"hosts": ["b.example", "a.example"], "secretName": "s"},
                    {"hosts": []},
                    {},
                    {"hosts": ["a.example", "c.example"]},
                ],
                "matrix": [[1, 2], [2, 3], []],
            },
        });
        let ix = Indexer::new(["spec.tls[*].hosts[*]"]).unwrap();
        assert_eq!(
            sets(&ix, &obj),
            [["a.example"], ["b.example"], ["c.example"]]
        );
        let ix = Indexer::new(["spec.matrix[*][*]"]).unwrap();
        assert_eq!(sets(&ix, &obj), [["1"], ["2"], ["3"]]);
        let ix = Indexer::new(["spec.matrix[*][1]"]).unwrap();
        assert_eq!(sets(&ix, &obj), [["2"], ["3"]]);
        let ix = Indexer::new(["spec.tls[0].hosts[*]", "spec.tls[*].secretName"]).unwrap();
        assert_eq!(sets(&ix, &obj), [["a.example", "s"], ["b.example", "s"]]);
    }

    #[test]
    fn composite_values_where_a_scalar_is_expected_are_errors() {
        let obj = json!({
            "metadata": {"namespace": "ns", "name": "n"},
            "spec": {
                "finalizers": ["a", {"b": 1}],
                "tls": [{"hosts": ["x"]}],
                "matrix": [[1]],
                "empty": [],
            },
        });
        for (path, found) in [
            ("spec.finalizers[*]", "an object"),
            ("spec.tls[*]", "an object"),
            ("spec.tls[*].hosts", "an array"),
            ("spec.matrix[*]", "an array"),
        ] {
            // An error even when another component is empty: errors do not depend on
            // the order or the values of the other paths.
            for ix in [
                Indexer::new([path]).unwrap(),
                Indexer::new(["spec.empty[*]", path]).unwrap(),
            ] {
                let err = ix.key_sets(&obj).unwrap_err();
                assert_eq!(err.operation, Operation::Index);
                assert_eq!(
                    err.kind,
                    ErrorKind::NotAScalar {
                        path: path.into(),
                        object: "ns/n".into(),
                        found,
                    }
                );
            }
        }
    }

    /// An object with `n` distinct values under each of `spec.l0[*]`, `spec.l1[*]`, ...
    fn lists(n: usize, count: usize) -> (Indexer, Value) {
        let list: Vec<Value> = (0..n).map(|i| json!(format!("v{i}"))).collect();
        let spec: serde_json::Map<String, Value> = (0..count)
            .map(|l| (format!("l{l}"), Value::Array(list.clone())))
            .collect();
        let paths: Vec<String> = (0..count).map(|l| format!("spec.l{l}[*]")).collect();
        let obj = json!({"metadata": {"namespace": "ns", "name": "big"}, "spec": spec});
        (Indexer::new(paths).unwrap(), obj)
    }

    #[test]
    fn bound_allows_exactly_the_limit_and_refuses_one_more() {
        assert_eq!(MAX_ENTRIES_PER_OBJECT, 256);
        let (ix, obj) = lists(16, 2);
        let keys = ix.key_sets(&obj).unwrap();
        assert_eq!(keys.len(), MAX_ENTRIES_PER_OBJECT);
        assert_eq!(
            keys.iter().map(Keys::to_vec).collect::<BTreeSet<_>>().len(),
            keys.len()
        );
        let (ix, obj) = lists(MAX_ENTRIES_PER_OBJECT, 1);
        assert_eq!(ix.key_sets(&obj).unwrap().len(), MAX_ENTRIES_PER_OBJECT);

        let (ix, obj) = lists(MAX_ENTRIES_PER_OBJECT + 1, 1);
        let err = ix.key_sets(&obj).unwrap_err();
        assert_eq!(err.operation, Operation::Index);
        assert_eq!(
            err.kind,
            ErrorKind::TooManyValues(Box::new(TooManyValues {
                index: None,
                object: "ns/big".into(),
                paths: vec![("spec.l0[*]".into(), 257)],
                limit: 256,
                found: 257,
            }))
        );
        // What a store that names the index reports.
        let ErrorKind::TooManyValues(mut e) = err.kind.clone() else {
            panic!("{err}");
        };
        e.index = Some("by_list".into());
        assert!(
            e.to_string().contains("entries of index \"by_list\""),
            "{e}"
        );
        let message = err.to_string();
        for part in ["ns/big", "257 entries", "\"spec.l0[*]\"", "256", "fewer"] {
            assert!(message.contains(part), "{part}: {message}");
        }
        // A duplicate does not count: 257 elements with 256 distinct values pass.
        let mut obj = obj;
        obj["spec"]["l0"][256] = json!("v0");
        assert_eq!(ix.key_sets(&obj).unwrap().len(), MAX_ENTRIES_PER_OBJECT);
    }

    #[test]
    fn a_million_key_product_is_refused_before_it_is_built() {
        // 1,000 × 1,000: refused on the count of the two lists' values, before any key.
        let (ix, obj) = lists(1_000, 2);
        let err = ix.key_sets(&obj).unwrap_err();
        let ErrorKind::TooManyValues(e) = &err.kind else {
            panic!("{err}");
        };
        assert_eq!(e.found, 1_000_000);
        assert_eq!(
            e.paths,
            [
                ("spec.l0[*]".to_string(), 1_000),
                ("spec.l1[*]".to_string(), 1_000)
            ]
        );
        assert!(
            err.to_string()
                .contains("1000 values of \"spec.l0[*]\" × 1000 values of \"spec.l1[*]\""),
            "{err}"
        );
        // 1,000^7 does not even fit a usize: the count saturates, and this test could
        // not finish if any key were built.
        let (ix, obj) = lists(1_000, 7);
        let err = ix.key_sets(&obj).unwrap_err();
        assert!(
            matches!(&err.kind, ErrorKind::TooManyValues(e) if e.found == usize::MAX),
            "{err}"
        );
        // ... unless a path has no values: then there is nothing to count.
        let mut obj = obj;
        obj["spec"]["l6"] = json!([]);
        assert!(ix.key_sets(&obj).unwrap().is_empty());
    }

    fn owned_pod() -> Pod {
        let owner = |kind: &str, name: &str, uid: &str, controller| OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller,
            block_owner_deletion: Some(true),
        };
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("shop".into());
        pod.metadata.name = Some("web-1".into());
        pod.metadata.owner_references = Some(vec![
            owner("ReplicaSet", "web-5d4f", "uid-b", Some(true)),
            owner("ReplicaSet", "web-5d4f", "uid-b", None),
            owner("Job", "ünï/cödé", "uid-a", Some(false)),
            owner("", "", "", None),
        ]);
        pod.metadata.finalizers = Some(vec!["b/f".into(), "a".into(), "b/f".into()]);
        pod
    }

    #[test]
    fn owner_reference_and_finalizer_fast_paths_match_the_json_path() {
        let pod = owned_pod();
        let json = serde_json::to_value(&pod).unwrap();
        let dynamic: DynamicObject = serde_json::from_value(json.clone()).unwrap();
        let paths = [
            "metadata.ownerReferences[*].uid",
            "metadata.ownerReferences[*].name",
            "metadata.ownerReferences[*].kind",
            "metadata.ownerReferences[*].apiVersion",
            "metadata.ownerReferences[*].controller",
            "metadata.ownerReferences[*].blockOwnerDeletion",
            "metadata.finalizers[*]",
        ];
        for path in paths {
            let fast = Indexer::new(["metadata.namespace", path]).unwrap();
            assert!(!reads_json(&fast), "{path}");
            let slow = json_only(["metadata.namespace", path]);
            let want = sets(&slow, &json);
            assert!(!want.is_empty(), "{path}");
            assert_eq!(sets(&slow, &pod), want, "{path}");
            assert_eq!(sets(&fast, &pod), want, "{path} on a Pod");
            assert_eq!(sets(&fast, &dynamic), want, "{path} on a DynamicObject");
            assert_eq!(sets(&fast, &json), want, "{path} on a serde_json::Value");
        }
        let uid = Indexer::new(["metadata.ownerReferences[*].uid"]).unwrap();
        assert_eq!(sets(&uid, &pod), [[""], ["uid-a"], ["uid-b"]]);
        let controller = Indexer::new(["metadata.ownerReferences[*].controller"]).unwrap();
        assert_eq!(sets(&controller, &pod), [["false"], ["true"]]);

        // No owner references, or none at all: no keys, for both paths.
        let mut orphan = pod.clone();
        orphan.metadata.owner_references = Some(Vec::new());
        orphan.metadata.finalizers = None;
        for path in paths {
            let fast = Indexer::new([path]).unwrap();
            assert!(fast.key_sets(&orphan).unwrap().is_empty(), "{path}");
            let json = serde_json::to_value(&orphan).unwrap();
            assert!(
                json_only([path]).key_sets(&json).unwrap().is_empty(),
                "{path}"
            );
        }
    }

    #[test]
    fn unicode_and_slashes_in_values_and_paths_are_kept_whole() {
        let obj = json!({
            "metadata": {
                "namespace": "ns/x",
                "name": "ünï",
                "labels": {"ключ/имя": "знач/ение"},
                "finalizers": ["a/b", "🦀", "", "a/b"],
            },
            "spec": {"hôtes": [{"nom": "é/è"}, {"nom": "\u{0}"}]},
        });
        let ix = Indexer::new([
            "metadata.namespace",
            "metadata.labels['ключ/имя']",
            "metadata.finalizers[*]",
            "spec.hôtes[*].nom",
        ])
        .unwrap();
        assert_eq!(
            sets(&ix, &obj),
            [
                ["ns/x", "знач/ение", "", "\u{0}"],
                ["ns/x", "знач/ение", "", "é/è"],
                ["ns/x", "знач/ение", "a/b", "\u{0}"],
                ["ns/x", "знач/ение", "a/b", "é/è"],
                ["ns/x", "знач/ение", "🦀", "\u{0}"],
                ["ns/x", "знач/ение", "🦀", "é/è"],
            ]
        );
        let err = Indexer::new(["metadata.finalizers[*]", "spec.hôtes[*]"])
            .unwrap()
            .key_sets(&obj)
            .unwrap_err();
        assert!(err.to_string().contains("ns/x/ünï"), "{err}");
    }

    /// One step of a path as the naive reference below reads it.
    #[derive(Debug, Clone, Copy)]
    enum Tok {
        F(&'static str),
        I(usize),
        All,
    }

    /// The paths the model draws from, each with its steps spelled out by hand (so
    /// that the reference does not share the parser under test). `spec.a` is mostly a
    /// list of scalars and `spec.b` mostly a list of mappings, so most paths read
    /// values and some (`spec.b[*]`, or an odd element) are not scalars.
    const POOL: &[(&str, &[Tok])] = {
        use Tok::*;
        &[
            ("spec.a[*]", &[F("spec"), F("a"), All]),
            ("spec.a[*]", &[F("spec"), F("a"), All]),
            ("spec.b[*].x", &[F("spec"), F("b"), All, F("x")]),
            ("spec.b[*].y[*]", &[F("spec"), F("b"), All, F("y"), All]),
            ("spec.b[*].y[*]", &[F("spec"), F("b"), All, F("y"), All]),
            ("spec.b[*].x[*]", &[F("spec"), F("b"), All, F("x"), All]),
            ("spec.b[0].x", &[F("spec"), F("b"), I(0), F("x")]),
            ("spec.b[*]", &[F("spec"), F("b"), All]),
            ("spec.a[1]", &[F("spec"), F("a"), I(1)]),
            ("spec.c", &[F("spec"), F("c")]),
            ("metadata.name", &[F("metadata"), F("name")]),
        ]
    };

    /// What `key_sets` must give, computed the slow and obvious way: every value each
    /// path reaches, the whole product of them (duplicates and all), then a set.
    /// `Err` names what `key_sets` must fail with.
    fn naive(
        obj: &Value,
        paths: &[usize],
        empty: bool,
    ) -> Result<BTreeSet<Vec<String>>, &'static str> {
        fn reach<'v>(v: &'v Value, toks: &[Tok], out: &mut Vec<&'v Value>) {
            match toks.split_first() {
                None => out.push(v),
                Some((Tok::F(f), rest)) => {
                    if let Some(v) = v.as_object().and_then(|m| m.get(*f)) {
                        reach(v, rest, out);
                    }
                }
                Some((Tok::I(i), rest)) => {
                    if let Some(v) = v.as_array().and_then(|a| a.get(*i)) {
                        reach(v, rest, out);
                    }
                }
                Some((Tok::All, rest)) => {
                    for v in v.as_array().into_iter().flatten() {
                        reach(v, rest, out);
                    }
                }
            }
        }
        let mut product: Vec<Vec<String>> = vec![Vec::new()];
        let mut columns = Vec::new();
        for &i in paths {
            let toks = POOL[i].1;
            let mut leaves = Vec::new();
            reach(obj, toks, &mut leaves);
            let mut values = Vec::new();
            for leaf in leaves {
                match leaf {
                    Value::Null => {}
                    Value::String(s) => values.push(s.clone()),
                    Value::Number(n) => values.push(n.to_string()),
                    Value::Bool(b) => values.push(b.to_string()),
                    Value::Object(_) | Value::Array(_) => return Err("NotAScalar"),
                }
            }
            let multi = toks.iter().any(|t| matches!(t, Tok::All));
            if values.is_empty() && empty && !multi {
                values.push(String::new());
            }
            columns.push(values);
        }
        for values in &columns {
            product = product
                .iter()
                .flat_map(|key| {
                    values.iter().map(move |v| {
                        let mut key = key.clone();
                        key.push(v.clone());
                        key
                    })
                })
                .collect();
        }
        let keys: BTreeSet<Vec<String>> = product.into_iter().collect();
        if keys.len() > MAX_ENTRIES_PER_OBJECT {
            return Err("TooManyValues");
        }
        Ok(keys)
    }

    fn any_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => prop::sample::select(vec!["a", "b", "c", "d", "é/f", "", "1"])
                .prop_map(Value::from),
            2 => (0..3i64).prop_map(Value::from),
            1 => any::<bool>().prop_map(Value::from),
            1 => Just(Value::Null),
        ]
    }

    fn any_list(len: std::ops::Range<usize>) -> BoxedStrategy<Value> {
        prop::collection::vec(any_scalar(), len)
            .prop_map(Value::Array)
            .boxed()
    }

    /// A mapping with an `x` (a scalar or a list) and a `y` (a list), either possibly
    /// missing.
    fn any_mapping() -> impl Strategy<Value = Value> {
        let x = prop_oneof![8 => any_scalar().boxed(), 1 => any_list(0..4)];
        (
            prop::option::weighted(0.8, x),
            prop::option::weighted(0.8, any_list(0..6)),
        )
            .prop_map(|(x, y)| {
                let mut m = serde_json::Map::new();
                m.extend(x.map(|x| ("x".to_string(), x)));
                m.extend(y.map(|y| ("y".to_string(), y)));
                Value::Object(m)
            })
    }

    /// `spec.a` (mostly scalars), `spec.b` (mostly mappings) and `spec.c`, each possibly
    /// missing, `null`, empty or of another type.
    fn any_object() -> impl Strategy<Value = Value> {
        let list_of = |element: BoxedStrategy<Value>| {
            prop::option::weighted(
                0.9,
                prop_oneof![
                    1 => Just(json!([])),
                    1 => any_scalar(),
                    10 => prop::collection::vec(element, 1..8).prop_map(Value::Array),
                ],
            )
        };
        let a =
            list_of(prop_oneof![30 => any_scalar().boxed(), 1 => any_mapping().boxed()].boxed());
        let b =
            list_of(prop_oneof![1 => any_scalar().boxed(), 30 => any_mapping().boxed()].boxed());
        (a, b, prop::option::weighted(0.8, any_scalar())).prop_map(|(a, b, c)| {
            let mut spec = serde_json::Map::new();
            spec.extend(a.map(|a| ("a".to_string(), a)));
            spec.extend(b.map(|b| ("b".to_string(), b)));
            spec.extend(c.map(|c| ("c".to_string(), c)));
            json!({"metadata": {"namespace": "ns", "name": "n"}, "spec": spec})
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// `key_sets` is the set of the product of every value each path reaches:
        /// the same keys, in sorted order, without duplicates; and it fails exactly
        /// when a value is not a scalar or the keys are too many.
        #[test]
        fn key_sets_equals_the_naive_product_of_json_values(
            obj in any_object(),
            paths in prop::collection::vec(0..POOL.len(), 1..6),
            empty in any::<bool>(),
        ) {
            let mut ix = Indexer::new(paths.iter().map(|&i| POOL[i].0)).unwrap();
            if empty {
                ix = ix.missing_as_empty();
            }
            let got = ix.key_sets(&obj);
            match naive(&obj, &paths, empty) {
                Ok(want) => {
                    let got: Vec<Vec<String>> =
                        got.unwrap().iter().map(Keys::to_vec).collect();
                    let want: Vec<Vec<String>> = want.into_iter().collect();
                    prop_assert_eq!(got, want);
                }
                Err("NotAScalar") => prop_assert!(
                    matches!(got, Err(StoreError { kind: ErrorKind::NotAScalar { .. }, .. })),
                    "{:?}", got
                ),
                Err(_) => prop_assert!(
                    matches!(got, Err(StoreError { kind: ErrorKind::TooManyValues(_), .. })),
                    "{:?}", got
                ),
            }
        }
    }

    /// What `key_sets` gives, errors as their messages (which name the path, the
    /// object and what was found).
    fn outcome(r: Result<Vec<Keys>, StoreError>) -> Result<Vec<Vec<String>>, String> {
        r.map(|keys| keys.iter().map(Keys::to_vec).collect())
            .map_err(|e| e.to_string())
    }

    /// `ix` reads the same keys, or fails with the same error, from the typed object
    /// (its `Serialize` implementation, walked down each path) as from its JSON form
    /// (`to_json`, walked).
    fn same_keys_as_json<K>(typed: &K, ix: &Indexer) -> Result<Vec<Vec<String>>, String>
    where
        K: Object<crate::object::via::Resource> + serde::Serialize,
    {
        let json = serde_json::to_value(typed).unwrap();
        let got = outcome(ix.key_sets(typed));
        assert_eq!(got, outcome(ix.key_sets(&json)), "{:?}", ix.paths);
        if !ix.is_multi_valued() {
            assert_eq!(
                outcome(ix.key_list(typed).map(|k| vec![k])),
                outcome(ix.key_list(&json).map(|k| vec![k])),
                "{:?}",
                ix.paths
            );
        }
        got
    }

    /// [`same_keys_as_json`] for the fixture `json` of `kind`, deserialised into its
    /// type.
    fn same_keys_for_fixture(
        kind: &str,
        json: &Value,
        ix: &Indexer,
    ) -> Result<Vec<Vec<String>>, String> {
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::{ConfigMap, Service};
        use k8s_openapi::api::networking::v1::Ingress;
        fn typed<K: serde::de::DeserializeOwned>(json: &Value) -> K {
            serde_json::from_value(json.clone()).unwrap()
        }
        match kind {
            "Pod" => same_keys_as_json(&typed::<Pod>(json), ix),
            "Ingress" => same_keys_as_json(&typed::<Ingress>(json), ix),
            "Deployment" => same_keys_as_json(&typed::<Deployment>(json), ix),
            "Service" => same_keys_as_json(&typed::<Service>(json), ix),
            "ConfigMap" => same_keys_as_json(&typed::<ConfigMap>(json), ix),
            "DynamicObject" => same_keys_as_json(&typed::<DynamicObject>(json), ix),
            other => panic!("no type for {other}"),
        }
    }

    #[test]
    fn typed_objects_give_the_keys_and_errors_of_their_json() {
        use crate::object::testing::{all_paths, fixtures, text};
        let (mut ok, mut not_scalar, mut none) = (0, 0, 0);
        for (kind, json) in fixtures() {
            let paths: Vec<String> = all_paths(&json).iter().map(|p| text(p)).collect();
            for (i, path) in paths.iter().enumerate() {
                // Alone, under both policies, and beside another path (a product, and an
                // error of either).
                let other = &paths[(i * 7 + 3) % paths.len()];
                for ix in [
                    Indexer::new([path]).unwrap(),
                    Indexer::new([path]).unwrap().missing_as_empty(),
                    Indexer::new([path, other]).unwrap(),
                ] {
                    match same_keys_for_fixture(kind, &json, &ix) {
                        Ok(keys) if keys.is_empty() => none += 1,
                        Ok(_) => ok += 1,
                        Err(e) if e.contains("not a string, number or boolean") => not_scalar += 1,
                        Err(e) => {
                            assert!(e.contains("TooManyValues") || e.contains("entries"), "{e}")
                        }
                    }
                }
            }
        }
        // Every kind of outcome, many times.
        assert!(
            ok > 500 && not_scalar > 200 && none > 200,
            "{ok} {not_scalar} {none}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Paths drawn from typed objects' own JSON: the keys (or the error) of the
        /// typed object are those of its JSON form, for secondary and primary keys.
        #[test]
        fn key_sets_of_typed_objects_equal_key_sets_of_their_json(
            which in 0..6usize,
            draws in prop::collection::vec(prop::collection::vec(any::<u16>(), 1..7), 1..4),
            empty in any::<bool>(),
        ) {
            use crate::object::testing::{draw, fixtures, text};
            let (kind, json) = fixtures().swap_remove(which);
            let paths: Vec<String> = draws.iter().map(|d| text(&draw(&json, d))).collect();
            let mut ix = Indexer::new(&paths).unwrap();
            if empty {
                ix = ix.missing_as_empty();
            }
            let _ = same_keys_for_fixture(kind, &json, &ix);
        }

        /// The same for a custom resource with every serde shape.
        #[test]
        fn key_sets_of_a_custom_resource_equal_key_sets_of_its_json(
            doc in crate::object::testing::any_doc(),
            draws in prop::collection::vec(prop::collection::vec(any::<u16>(), 1..6), 1..4),
            empty in any::<bool>(),
        ) {
            use crate::object::testing::{draw, text};
            let json = serde_json::to_value(&doc).unwrap();
            let paths: Vec<String> = draws.iter().map(|d| text(&draw(&json, d))).collect();
            let mut ix = Indexer::new(&paths).unwrap();
            if empty {
                ix = ix.missing_as_empty();
            }
            let _ = same_keys_as_json(&doc, &ix);
        }
    }
}
