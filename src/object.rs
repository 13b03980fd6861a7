//! What the store needs to know about an object: its metadata, its identity and its
//! order.
//!
//! [`Object`] is implemented for every `kube::Resource` (typed k8s-openapi objects,
//! `DynamicObject`, `PartialObjectMeta`, custom resources) and for `serde_json::Value`
//! objects that carry a `metadata` object. The `Via` parameter only exists to let both
//! blanket and JSON implementations coexist (Rust's coherence rules forbid an
//! implementation for `serde_json::Value` beside one for every `kube::Resource`); it is
//! always inferred, and users never name it.

use std::borrow::Cow;
use std::cmp::Ordering;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::error::ErrorKind;
use crate::sync::Arc;

/// Markers that select an [`Object`] implementation. Inferred; never named by users.
pub mod via {
    /// The implementation for `kube::Resource` types.
    #[derive(Debug)]
    pub enum Resource {}
    /// The implementation for `serde_json::Value`.
    #[derive(Debug)]
    pub enum Json {}
}

/// An object the stores can hold.
///
/// Missing metadata reads as empty strings: an object without `metadata` has the empty
/// identity (namespace `""`, name `""`, no uid). Metadata that is present but of the
/// wrong type (possible only in untyped JSON, such as `"name": 5`) is refused by
/// [`check_metadata`](Self::check_metadata), never read as empty.
pub trait Object<Via>: Send + Sync + 'static {
    /// `metadata.namespace`, `""` when absent (cluster-scoped objects).
    fn namespace(&self) -> &str;
    /// `metadata.name`, `""` when absent.
    fn name(&self) -> &str;
    /// `metadata.uid`, `""` when absent.
    fn uid(&self) -> &str;
    /// `metadata.resourceVersion`, if set.
    fn resource_version(&self) -> Option<&str>;
    /// A label's value.
    fn label(&self, key: &str) -> Option<&str>;
    /// An annotation's value.
    fn annotation(&self, key: &str) -> Option<&str>;
    /// The object as JSON, to read fields outside `metadata`.
    ///
    /// # Errors
    /// The serializer's error for types that cannot be represented as JSON.
    fn to_json(&self) -> Result<Cow<'_, Value>, serde_json::Error>;
    /// Whether the identity fields can be read faithfully. The stores call it before
    /// storing or removing an object, so that a field the accessors above would read
    /// as `""` because it has the wrong type never merges two objects into one
    /// identity.
    ///
    /// Defaults to: `Ok(())`, right for typed objects, whose metadata fields are
    /// strings by construction.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidMetadata`] naming the first field that is present, not
    /// `null`, and not a string (or `metadata` itself, when it is not a mapping).
    fn check_metadata(&self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

impl<T> Object<via::Resource> for T
where
    T: kube::Resource + serde::Serialize + Send + Sync + 'static,
{
    fn namespace(&self) -> &str {
        self.meta().namespace.as_deref().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or("")
    }
    fn uid(&self) -> &str {
        self.meta().uid.as_deref().unwrap_or("")
    }
    fn resource_version(&self) -> Option<&str> {
        self.meta().resource_version.as_deref()
    }
    fn label(&self, key: &str) -> Option<&str> {
        meta_map(self.meta(), key, |m| m.labels.as_ref())
    }
    fn annotation(&self, key: &str) -> Option<&str> {
        meta_map(self.meta(), key, |m| m.annotations.as_ref())
    }
    fn to_json(&self) -> Result<Cow<'_, Value>, serde_json::Error> {
        serde_json::to_value(self).map(Cow::Owned)
    }
}

fn meta_map<'a>(
    meta: &'a ObjectMeta,
    key: &str,
    pick: impl Fn(&'a ObjectMeta) -> Option<&'a std::collections::BTreeMap<String, String>>,
) -> Option<&'a str> {
    pick(meta).and_then(|m| m.get(key)).map(String::as_str)
}

fn json_meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

fn json_meta_map<'a>(v: &'a Value, map: &str, key: &str) -> Option<&'a str> {
    v.get("metadata")?.get(map)?.get(key)?.as_str()
}

impl Object<via::Json> for Value {
    fn namespace(&self) -> &str {
        json_meta_str(self, "namespace").unwrap_or("")
    }
    fn name(&self) -> &str {
        json_meta_str(self, "name").unwrap_or("")
    }
    fn uid(&self) -> &str {
        json_meta_str(self, "uid").unwrap_or("")
    }
    fn resource_version(&self) -> Option<&str> {
        json_meta_str(self, "resourceVersion")
    }
    fn label(&self, key: &str) -> Option<&str> {
        json_meta_map(self, "labels", key)
    }
    fn annotation(&self, key: &str) -> Option<&str> {
        json_meta_map(self, "annotations", key)
    }
    fn to_json(&self) -> Result<Cow<'_, Value>, serde_json::Error> {
        Ok(Cow::Borrowed(self))
    }
    fn check_metadata(&self) -> Result<(), ErrorKind> {
        // A value that is not a mapping, or has no `metadata`, has the empty identity.
        let Some(meta) = self.get("metadata") else {
            return Ok(());
        };
        let invalid = |field, v: &Value| ErrorKind::InvalidMetadata {
            field,
            found: json_kind(v),
        };
        let Value::Object(meta) = meta else {
            return match meta {
                Value::Null => Ok(()),
                other => Err(invalid("metadata", other)),
            };
        };
        for (key, field) in [
            ("namespace", "metadata.namespace"),
            ("name", "metadata.name"),
            ("uid", "metadata.uid"),
            ("resourceVersion", "metadata.resourceVersion"),
        ] {
            match meta.get(key) {
                None | Some(Value::Null | Value::String(_)) => {}
                Some(other) => return Err(invalid(field, other)),
            }
        }
        Ok(())
    }
}

/// What a JSON value is, for messages ("a number").
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A function that removes fields from objects before a store keeps them (watch feeds
/// strip objects before they enter a store, the on-demand tier bodies before it caches
/// them).
pub type Stripper<E> = Arc<dyn Fn(&mut E) + Send + Sync>;

/// Who an object is: its UID when set, else its namespace and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Identity<'a> {
    Uid(&'a str),
    Name { namespace: &'a str, name: &'a str },
}

/// The three metadata fields that order and identify objects, read once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetaView<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) uid: &'a str,
}

impl<'a> MetaView<'a> {
    pub(crate) fn identity(&self) -> Identity<'a> {
        if self.uid.is_empty() {
            Identity::Name {
                namespace: self.namespace,
                name: self.name,
            }
        } else {
            Identity::Uid(self.uid)
        }
    }

    /// The stable order of results: (namespace, name, uid). Two objects of different
    /// identities never compare equal: equal (namespace, name, uid) means equal uid, or
    /// no uid and equal namespace and name.
    pub(crate) fn order(&self, other: &MetaView<'_>) -> Ordering {
        self.namespace
            .cmp(other.namespace)
            .then_with(|| self.name.cmp(other.name))
            .then_with(|| self.uid.cmp(other.uid))
    }

    /// `namespace/name` for messages.
    pub(crate) fn display(&self) -> String {
        if self.namespace.is_empty() {
            self.name.to_owned()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

/// The accessors a store captures when it is built, so that the rest of the store is
/// free of the `Via` marker.
pub(crate) struct Accessors<K> {
    pub(crate) meta: for<'a> fn(&'a K) -> MetaView<'a>,
    /// [`Object::resource_version`].
    pub(crate) version: for<'a> fn(&'a K) -> Option<&'a str>,
    /// [`Object::check_metadata`].
    pub(crate) check: fn(&K) -> Result<(), ErrorKind>,
}

impl<K> Clone for Accessors<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Accessors<K> {}

impl<K> std::fmt::Debug for Accessors<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accessors")
    }
}

impl<K> Accessors<K> {
    pub(crate) fn of<M>() -> Self
    where
        K: Object<M>,
    {
        Self {
            meta: |k| MetaView {
                namespace: k.namespace(),
                name: k.name(),
                uid: k.uid(),
            },
            version: |k| k.resource_version(),
            check: K::check_metadata,
        }
    }
}
