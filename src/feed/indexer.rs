//! The indexer: turns an object into its key components by field paths.
//!
//! Paths are parsed once, when the indexer is built; an invalid path is an error then,
//! never per object. Syntax:
//!
//! - dotted field names: `metadata.namespace`, `spec.ingressClassName`;
//! - brackets with a quoted key for keys containing dots or other characters:
//!   `metadata.labels['app.kubernetes.io/name']` (single or double quotes; a backslash
//!   escapes the next character);
//! - brackets with a number for an array element: `spec.rules[0].host`.
//!
//! Values: strings as they are, integers as integers (`1`), other numbers as JSON
//! prints them (`1.5`), booleans as `true`/`false`. Objects and arrays are errors.
//! `metadata.namespace`, `metadata.name` and `metadata.uid` read as `""` when absent
//! (a cluster-scoped object has no namespace). Any other missing field (or `null`) is
//! an error by default, or an empty component with [`Indexer::missing_as_empty`].
//!
//! Metadata paths (`namespace`, `name`, `uid`, `resourceVersion`, `labels[..]`,
//! `annotations[..]`) read the metadata directly; only other paths serialise the object
//! to JSON, once per call for all of them.

use serde_json::Value;
use std::borrow::Cow;

use crate::error::{ErrorKind, Operation, StoreError};
use crate::feed::keys::Keys;
use crate::object::{MetaView, Object};

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
    needs_json: bool,
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
    Json(Vec<Segment>),
}

/// One step of a parsed field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A field of an object (dotted or a quoted bracket key).
    Field(String),
    /// An element of an array (`[0]`).
    Index(usize),
}

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
        let needs_json = paths.iter().any(|p| matches!(p.kind, PathKind::Json(_)));
        Ok(Self {
            paths,
            missing: MissingField::Error,
            needs_json,
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
    /// [`ErrorKind::Serialize`], naming the path and the object's `namespace/name`.
    pub fn key_list<K: Object<M>, M>(&self, obj: &K) -> Result<Keys, StoreError> {
        let who = || {
            MetaView {
                namespace: obj.namespace(),
                name: obj.name(),
                uid: obj.uid(),
            }
            .display()
        };
        let fail = |kind| StoreError {
            operation: Operation::Index,
            keys: Vec::new(),
            kind,
        };
        let json = if self.needs_json {
            Some(obj.to_json().map_err(|e| {
                fail(ErrorKind::Serialize {
                    object: who(),
                    source: e.into(),
                })
            })?)
        } else {
            None
        };
        let mut out = Keys::new();
        for p in &self.paths {
            let found: Option<Cow<'_, str>> = match &p.kind {
                PathKind::Namespace => Some(obj.namespace().into()),
                PathKind::Name => Some(obj.name().into()),
                PathKind::Uid => Some(obj.uid().into()),
                PathKind::ResourceVersion => obj.resource_version().map(Into::into),
                PathKind::Label(k) => obj.label(k).map(Into::into),
                PathKind::Annotation(k) => obj.annotation(k).map(Into::into),
                PathKind::Json(segs) => match json.as_deref().and_then(|v| walk(v, segs)) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.as_str().into()),
                    Some(Value::Bool(b)) => Some(b.to_string().into()),
                    Some(Value::Number(n)) => Some(n.to_string().into()),
                    Some(Value::Object(_)) => {
                        return Err(fail(ErrorKind::NotAScalar {
                            path: p.text.clone(),
                            object: who(),
                            found: "an object",
                        }));
                    }
                    Some(Value::Array(_)) => {
                        return Err(fail(ErrorKind::NotAScalar {
                            path: p.text.clone(),
                            object: who(),
                            found: "an array",
                        }));
                    }
                },
            };
            match (found, self.missing) {
                (Some(v), _) => out.push(&v),
                (None, MissingField::Empty) => out.push(""),
                (None, MissingField::Error) => {
                    return Err(fail(ErrorKind::MissingField {
                        path: p.text.clone(),
                        object: who(),
                    }));
                }
            }
        }
        Ok(out)
    }
}

/// Parses `text` with the indexer's syntax into its segments, fast paths included
/// (`metadata.labels['a.b']` is `metadata`, `labels`, `a.b`). Used by the configuration
/// to validate and compile `ignore_fields` and to compare them with `index_by`.
pub(crate) fn parse_path(text: &str) -> Result<Vec<Segment>, ErrorKind> {
    let field = |s: &str| Segment::Field(s.to_owned());
    Ok(match parse(text)?.kind {
        PathKind::Namespace => vec![field("metadata"), field("namespace")],
        PathKind::Name => vec![field("metadata"), field("name")],
        PathKind::Uid => vec![field("metadata"), field("uid")],
        PathKind::ResourceVersion => vec![field("metadata"), field("resourceVersion")],
        PathKind::Label(k) => vec![field("metadata"), field("labels"), Segment::Field(k)],
        PathKind::Annotation(k) => {
            vec![field("metadata"), field("annotations"), Segment::Field(k)]
        }
        PathKind::Json(segs) => segs,
    })
}

fn walk<'v>(mut v: &'v Value, segs: &[Segment]) -> Option<&'v Value> {
    for s in segs {
        v = match s {
            Segment::Field(f) => v.get(f.as_str())?,
            Segment::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

fn parse(text: &str) -> Result<FieldPath, ErrorKind> {
    let bad = |reason: String| ErrorKind::InvalidFieldPath {
        path: text.to_owned(),
        reason,
    };
    if text.is_empty() {
        return Err(bad("the path is empty".into()));
    }
    let mut segs = Vec::new();
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
                if segs.is_empty() {
                    return Err(bad("a path must start with a field name".into()));
                }
                if expect_field {
                    return Err(bad(format!(
                        "expected a field name after '.' at character {i}"
                    )));
                }
                let (seg, next) = parse_bracket(&chars, i).map_err(bad)?;
                segs.push(seg);
                i = next;
                expect_field = false;
            }
            c if expect_field && is_name_char(c) => {
                let start = i;
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
                segs.push(Segment::Field(chars[start..i].iter().collect()));
                expect_field = false;
            }
            c => return Err(bad(format!("unexpected {c:?} at character {i}"))),
        }
    }
    let kind = match segs.as_slice() {
        [Segment::Field(m), Segment::Field(f)] if m == "metadata" => match f.as_str() {
            "namespace" => PathKind::Namespace,
            "name" => PathKind::Name,
            "uid" => PathKind::Uid,
            "resourceVersion" => PathKind::ResourceVersion,
            _ => PathKind::Json(segs),
        },
        [Segment::Field(m), Segment::Field(f), Segment::Field(k)]
            if m == "metadata" && f == "labels" =>
        {
            PathKind::Label(k.clone())
        }
        [Segment::Field(m), Segment::Field(f), Segment::Field(k)]
            if m == "metadata" && f == "annotations" =>
        {
            PathKind::Annotation(k.clone())
        }
        _ => PathKind::Json(segs),
    };
    Ok(FieldPath {
        text: text.to_owned(),
        kind,
    })
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '$'
}

fn parse_bracket(chars: &[char], open: usize) -> Result<(Segment, usize), String> {
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
            Ok((Segment::Field(key), i + 1))
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
            Ok((Segment::Index(n), i + 1))
        }
        _ => Err(format!(
            "expected a quoted key or an index after '[' at character {open}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            PathKind::Json(vec![
                Segment::Field("spec".into()),
                Segment::Field("rules".into()),
                Segment::Index(0),
                Segment::Field("host".into())
            ])
        );
        assert!(ix.needs_json);
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
}
