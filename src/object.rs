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

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use crate::error::ErrorKind;
use crate::sync::Arc;

mod path;
mod path_ser;
#[cfg(test)]
pub(crate) mod testing;

pub use path::PathStep;

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
    /// Calls `f` with the key and value of every label, in no guaranteed order (typed
    /// objects give them in key order). What a label index reads; [`label`](Self::label)
    /// reads one.
    ///
    /// In an untyped JSON object, a label whose value is not a string is skipped, as
    /// [`label`](Self::label) reads it as absent.
    ///
    /// Defaults to: the labels of [`to_json`](Self::to_json)'s `metadata.labels` (none
    /// if it fails), correct for any implementation whose JSON agrees with its
    /// accessors but slow; both of this crate's implementations read the metadata
    /// directly, without serialising anything.
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        if let Ok(json) = self.to_json() {
            json_labels(&json, f);
        }
    }
    /// Calls `f` with every entry of `metadata.ownerReferences`, in order. What an
    /// indexer reads for `metadata.ownerReferences[*].uid` (and the other fields of an
    /// owner reference) without serialising the object.
    ///
    /// In an untyped JSON object, an entry that is not a mapping is skipped, and a field
    /// of the wrong type (a number for `uid`, a string for `controller`) reads as absent.
    ///
    /// Defaults to: the entries of [`to_json`](Self::to_json)'s
    /// `metadata.ownerReferences` (none if it fails); both of this crate's
    /// implementations read the metadata directly.
    fn for_each_owner_reference(&self, f: &mut dyn FnMut(OwnerRef<'_>)) {
        if let Ok(json) = self.to_json() {
            json_owner_references(&json, f);
        }
    }
    /// Calls `f` with every entry of `metadata.finalizers`, in order. What an indexer
    /// reads for `metadata.finalizers[*]` without serialising the object.
    ///
    /// In an untyped JSON object, an entry that is not a string is skipped.
    ///
    /// Defaults to: the entries of [`to_json`](Self::to_json)'s `metadata.finalizers`
    /// (none if it fails); both of this crate's implementations read the metadata
    /// directly.
    fn for_each_finalizer(&self, f: &mut dyn FnMut(&str)) {
        if let Ok(json) = self.to_json() {
            json_finalizers(&json, f);
        }
    }
    /// Calls `f` with every value `path` reaches in the object's JSON form
    /// ([`to_json`](Self::to_json)), `[*]` ([`PathStep::Each`]) expanded, in document
    /// order, `null` included. A missing field, and a step that does not apply (a field
    /// of a string, an element of a mapping, an index past the end), reach nothing.
    /// What an [`Indexer`](crate::Indexer) reads for a path outside the metadata the
    /// other methods read, such as `spec.nodeName`.
    ///
    /// Defaults to: walking [`to_json`](Self::to_json), once per call. A value borrowed
    /// from it (as `serde_json::Value`'s own is) is passed borrowed; one from an owned
    /// JSON form is cloned. The `kube::Resource` implementation reads the values from
    /// the object's `Serialize` implementation instead, entering only the fields on the
    /// path and building only the values at its end: a Pod's `spec.nodeName` costs a
    /// few comparisons of field names and one copy of the name, not a 2 KB JSON tree.
    /// It reports the same values, in the same order.
    ///
    /// # Examples
    /// ```
    /// use k8s_openapi::api::core::v1::{Pod, PodSpec};
    /// use k8s_store::{Object, PathStep};
    ///
    /// let pod = Pod {
    ///     spec: Some(PodSpec { node_name: Some("node-a".into()), ..PodSpec::default() }),
    ///     ..Pod::default()
    /// };
    /// let path = [PathStep::Field("spec".into()), PathStep::Field("nodeName".into())];
    /// let mut found = Vec::new();
    /// pod.for_each_value_at(&path, &mut |v| found.push(v.into_owned()))?;
    /// assert_eq!(found, [serde_json::json!("node-a")]);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    /// The serializer's error, as [`to_json`](Self::to_json)'s. The `kube::Resource`
    /// implementation serialises only the values on the path, so it reports only
    /// their errors: a field elsewhere that cannot be serialised (which typed
    /// Kubernetes objects never have) fails `to_json` but not this.
    fn for_each_value_at<'s>(
        &'s self,
        path: &[PathStep],
        f: &mut dyn FnMut(Cow<'s, Value>),
    ) -> Result<(), serde_json::Error> {
        match self.to_json()? {
            Cow::Borrowed(json) => path::each_value(json, path, &mut |v| f(Cow::Borrowed(v))),
            Cow::Owned(json) => path::each_value(&json, path, &mut |v| f(Cow::Owned(v.clone()))),
        }
        Ok(())
    }
}

/// One entry of an object's `metadata.ownerReferences`, borrowed from it: what
/// [`Object::for_each_owner_reference`] visits.
///
/// Every field is optional because an untyped JSON object may lack any of them; in a
/// typed object's (an `OwnerReference`'s) the four strings are always present.
///
/// # Examples
/// ```
/// use k8s_openapi::api::core::v1::Pod;
/// use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
/// use k8s_store::{Object, OwnerRef};
///
/// let mut pod = Pod::default();
/// pod.metadata.owner_references = Some(vec![OwnerReference {
///     kind: "ReplicaSet".into(),
///     name: "web-5d4f".into(),
///     uid: "6f0c".into(),
///     controller: Some(true),
///     ..OwnerReference::default()
/// }]);
/// let mut owners = Vec::new();
/// pod.for_each_owner_reference(&mut |o: OwnerRef<'_>| owners.push(o.uid.unwrap_or("").to_owned()));
/// assert_eq!(owners, ["6f0c"]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OwnerRef<'a> {
    /// `apiVersion` of the owner.
    pub api_version: Option<&'a str>,
    /// `kind` of the owner.
    pub kind: Option<&'a str>,
    /// `name` of the owner.
    pub name: Option<&'a str>,
    /// `uid` of the owner.
    pub uid: Option<&'a str>,
    /// `controller`: whether the owner is the managing controller.
    pub controller: Option<bool>,
    /// `blockOwnerDeletion`.
    pub block_owner_deletion: Option<bool>,
}

impl<'a> From<&'a OwnerReference> for OwnerRef<'a> {
    fn from(r: &'a OwnerReference) -> Self {
        Self {
            api_version: Some(&r.api_version),
            kind: Some(&r.kind),
            name: Some(&r.name),
            uid: Some(&r.uid),
            controller: r.controller,
            block_owner_deletion: r.block_owner_deletion,
        }
    }
}

impl<'a> OwnerRef<'a> {
    /// The owner reference of a JSON mapping, `None` for any other value. A field of
    /// the wrong type reads as absent.
    fn of_json(v: &'a Value) -> Option<Self> {
        let v = v.as_object()?;
        let text = |k: &str| v.get(k).and_then(Value::as_str);
        let flag = |k: &str| v.get(k).and_then(Value::as_bool);
        Some(Self {
            api_version: text("apiVersion"),
            kind: text("kind"),
            name: text("name"),
            uid: text("uid"),
            controller: flag("controller"),
            block_owner_deletion: flag("blockOwnerDeletion"),
        })
    }
}

fn json_labels(v: &Value, f: &mut dyn FnMut(&str, &str)) {
    let labels = v.get("metadata").and_then(|m| m.get("labels"));
    if let Some(Value::Object(labels)) = labels {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                f(k, v);
            }
        }
    }
}

fn json_owner_references(v: &Value, f: &mut dyn FnMut(OwnerRef<'_>)) {
    let refs = v.get("metadata").and_then(|m| m.get("ownerReferences"));
    if let Some(Value::Array(refs)) = refs {
        refs.iter().filter_map(OwnerRef::of_json).for_each(f);
    }
}

fn json_finalizers(v: &Value, f: &mut dyn FnMut(&str)) {
    let finalizers = v.get("metadata").and_then(|m| m.get("finalizers"));
    if let Some(Value::Array(finalizers)) = finalizers {
        finalizers.iter().filter_map(Value::as_str).for_each(f);
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
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in self.meta().labels.iter().flatten() {
            f(k, v);
        }
    }
    fn for_each_owner_reference(&self, f: &mut dyn FnMut(OwnerRef<'_>)) {
        for r in self.meta().owner_references.iter().flatten() {
            f(r.into());
        }
    }
    fn for_each_finalizer(&self, f: &mut dyn FnMut(&str)) {
        for name in self.meta().finalizers.iter().flatten() {
            f(name);
        }
    }
    fn for_each_value_at<'s>(
        &'s self,
        path: &[PathStep],
        f: &mut dyn FnMut(Cow<'s, Value>),
    ) -> Result<(), serde_json::Error> {
        for v in path_ser::values_at(self, path)? {
            f(Cow::Owned(v));
        }
        Ok(())
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
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        json_labels(self, f);
    }
    fn for_each_owner_reference(&self, f: &mut dyn FnMut(OwnerRef<'_>)) {
        json_owner_references(self, f);
    }
    fn for_each_finalizer(&self, f: &mut dyn FnMut(&str)) {
        json_finalizers(self, f);
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::core::DynamicObject;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn labels<M>(obj: &impl Object<M>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        obj.for_each_label(&mut |k, v| {
            out.insert(k.to_owned(), v.to_owned());
        });
        out
    }

    /// Owned copies of what `for_each_owner_reference` visits, in order.
    type Owner = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<bool>,
        Option<bool>,
    );

    fn owners<M>(obj: &impl Object<M>) -> Vec<Owner> {
        let own = |s: Option<&str>| s.map(str::to_owned);
        let mut out = Vec::new();
        obj.for_each_owner_reference(&mut |r| {
            out.push((
                own(r.api_version),
                own(r.kind),
                own(r.name),
                own(r.uid),
                r.controller,
                r.block_owner_deletion,
            ));
        });
        out
    }

    fn finalizers<M>(obj: &impl Object<M>) -> Vec<String> {
        let mut out = Vec::new();
        obj.for_each_finalizer(&mut |f| out.push(f.to_owned()));
        out
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "namespace": "shop",
                "name": "web-1",
                "labels": {"app": "web", "app.kubernetes.io/name": "ünï/cödé", "empty": ""},
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                     "uid": "u1", "controller": true, "blockOwnerDeletion": true},
                    {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u2"},
                ],
                "finalizers": ["b/f", "a", "b/f"],
            },
            "spec": {"containers": []},
        }))
        .unwrap()
    }

    #[test]
    fn metadata_visitors_read_typed_dynamic_and_json_objects_alike() {
        let pod = pod();
        let json = serde_json::to_value(&pod).unwrap();
        let dynamic: DynamicObject = serde_json::from_value(json.clone()).unwrap();

        let want_labels: BTreeMap<String, String> = [
            ("app", "web"),
            ("app.kubernetes.io/name", "ünï/cödé"),
            ("empty", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        assert_eq!(labels(&pod), want_labels);
        assert_eq!(labels(&dynamic), want_labels);
        assert_eq!(labels(&json), want_labels);
        for (k, v) in &want_labels {
            assert_eq!(pod.label(k), Some(v.as_str()));
        }

        let s = |s: &str| Some(s.to_owned());
        let want_owners = vec![
            (
                s("apps/v1"),
                s("ReplicaSet"),
                s("web-5d4f"),
                s("u1"),
                Some(true),
                Some(true),
            ),
            (s("v1"), s("Node"), s("n"), s("u2"), None, None),
        ];
        assert_eq!(owners(&pod), want_owners);
        assert_eq!(owners(&dynamic), want_owners);
        assert_eq!(owners(&json), want_owners);

        let want_finalizers = ["b/f", "a", "b/f"];
        assert_eq!(finalizers(&pod), want_finalizers);
        assert_eq!(finalizers(&dynamic), want_finalizers);
        assert_eq!(finalizers(&json), want_finalizers);

        // Nothing to visit: none of the three, and no call.
        let bare = Pod::default();
        let bare_json = json!({"metadata": {"name": "x"}});
        assert!(labels(&bare).is_empty() && labels(&bare_json).is_empty());
        assert!(owners(&bare).is_empty() && owners(&bare_json).is_empty());
        assert!(finalizers(&bare).is_empty() && finalizers(&bare_json).is_empty());
        assert!(labels(&json!(null)).is_empty() && owners(&json!([1])).is_empty());
    }

    #[test]
    fn json_metadata_of_the_wrong_type_reads_as_absent() {
        let obj = json!({
            "metadata": {
                "labels": {"a": 1, "b": "x", "c": null},
                "ownerReferences": [
                    5,
                    {"uid": 5, "name": "n", "controller": "yes", "kind": ["K"]},
                    {},
                ],
                "finalizers": ["f", 1, null, {"g": "h"}],
            },
        });
        assert_eq!(labels(&obj), [("b".to_owned(), "x".to_owned())].into());
        assert_eq!(
            obj.label("a"),
            None,
            "as the visitor, the accessor skips it"
        );
        assert_eq!(
            owners(&obj),
            [
                (None, None, Some("n".to_owned()), None, None, None),
                (None, None, None, None, None, None),
            ]
        );
        assert_eq!(finalizers(&obj), ["f"]);

        let odd = json!({"metadata": {"labels": "a=b", "ownerReferences": {}, "finalizers": "f"}});
        assert!(labels(&odd).is_empty());
        assert!(owners(&odd).is_empty());
        assert!(finalizers(&odd).is_empty());
    }

    /// An implementation of its own, with only the required methods: the visitors'
    /// defaults read its JSON.
    struct Custom(Value);
    enum ViaCustom {}

    impl Object<ViaCustom> for Custom {
        fn namespace(&self) -> &str {
            ""
        }
        fn name(&self) -> &str {
            ""
        }
        fn uid(&self) -> &str {
            ""
        }
        fn resource_version(&self) -> Option<&str> {
            None
        }
        fn label(&self, key: &str) -> Option<&str> {
            self.0.label(key)
        }
        fn annotation(&self, _: &str) -> Option<&str> {
            None
        }
        fn to_json(&self) -> Result<Cow<'_, Value>, serde_json::Error> {
            // Owned, as a typed object's is: the defaults must not borrow from it.
            Ok(Cow::Owned(self.0.clone()))
        }
    }

    #[test]
    fn default_visitors_read_the_objects_json() {
        let json = serde_json::to_value(pod()).unwrap();
        let custom = Custom(json.clone());
        assert_eq!(labels(&custom), labels(&json));
        assert_eq!(owners(&custom), owners(&json));
        assert_eq!(finalizers(&custom), finalizers(&json));
        assert_eq!(owners(&custom).len(), 2);

        // The on-demand tier's references keep no labels, owners or finalizers.
        let reference = crate::Reference::new("ns", "n", "u", Some("1"));
        assert!(labels(&reference).is_empty());
        assert!(owners(&reference).is_empty());
        assert!(finalizers(&reference).is_empty());
    }

    #[test]
    fn owner_ref_borrows_every_field_of_an_owner_reference() {
        let pod = pod();
        let refs = pod.metadata.owner_references.as_deref().unwrap_or_default();
        let r = OwnerRef::from(&refs[0]);
        assert_eq!(
            r,
            OwnerRef {
                api_version: Some("apps/v1"),
                kind: Some("ReplicaSet"),
                name: Some("web-5d4f"),
                uid: Some("u1"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }
        );
    }
}
