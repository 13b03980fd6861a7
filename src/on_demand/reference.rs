//! [`Reference`]: what the on-demand index keeps of an object, and its *hint*, the
//! pointer to its cached body.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::object::{Object, OwnerRef, via};
use crate::sync::{Arc, Slot, Stamp};

/// What the on-demand index keeps of an object: who it is and which version the watch
/// last reported, and no body. A store with secondary indexes or a label index (see
/// [`CachedStoreBuilder::index`](crate::CachedStoreBuilder::index)) also keeps the
/// parts of the metadata those read (labels, annotations, owner references), so that
/// its queries need no body; other stores keep none of them.
///
/// Inside a [`CachedStore`](crate::CachedStore) a reference may also point at its cached body (a *hint*),
/// so that a hit takes one probe (the index's) instead of two (index, then cache).
/// The cache stays the body's owner: the hint is set only while the cache holds the
/// body for this very reference, and cleared when the cache drops it (eviction,
/// expiry, invalidation, `clear`). Clones and comparisons ignore it.
pub struct Reference {
    pub(super) namespace: Box<str>,
    pub(super) name: Box<str>,
    pub(super) uid: Box<str>,
    pub(super) resource_version: Option<Box<str>>,
    /// The store's hash of (namespace, name), set when the store records it, so that
    /// cache lookups on the read path hash nothing.
    pub(super) key_hash: u64,
    pub(super) hint: Slot<Hint>,
    /// The metadata a store's indexes read, when it has any (see [`Keep`]).
    pub(super) meta: Option<Box<Kept>>,
}

/// Which parts of the metadata a store's references keep: those its secondary indexes
/// and label index read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Keep {
    pub(crate) labels: bool,
    pub(crate) annotations: bool,
    pub(crate) owners: bool,
}

impl Keep {
    pub(crate) fn any(self) -> bool {
        self.labels || self.annotations || self.owners
    }
}

/// The kept metadata of a [`Reference`]: maps sorted by key.
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct Kept {
    labels: Box<[(Box<str>, Box<str>)]>,
    annotations: Box<[(Box<str>, Box<str>)]>,
    owners: Box<[Owner]>,
}

/// An owner reference, kept.
#[derive(Clone, PartialEq, Eq)]
struct Owner {
    api_version: Option<Box<str>>,
    kind: Option<Box<str>>,
    name: Option<Box<str>>,
    uid: Option<Box<str>>,
    controller: Option<bool>,
    block_owner_deletion: Option<bool>,
}

impl Owner {
    fn of(o: OwnerRef<'_>) -> Self {
        Self {
            api_version: o.api_version.map(Into::into),
            kind: o.kind.map(Into::into),
            name: o.name.map(Into::into),
            uid: o.uid.map(Into::into),
            controller: o.controller,
            block_owner_deletion: o.block_owner_deletion,
        }
    }

    fn as_ref(&self) -> OwnerRef<'_> {
        OwnerRef {
            api_version: self.api_version.as_deref(),
            kind: self.kind.as_deref(),
            name: self.name.as_deref(),
            uid: self.uid.as_deref(),
            controller: self.controller,
            block_owner_deletion: self.block_owner_deletion,
        }
    }
}

/// `obj`'s annotations, sorted by key. `Object` reads one annotation at a time, so
/// they are read from its JSON form's metadata (a reference is built from a metadata
/// watch's objects, small).
fn annotations_of<M>(obj: &impl Object<M>) -> Box<[(Box<str>, Box<str>)]> {
    let Ok(json) = obj.to_json() else {
        return Box::default();
    };
    let mut out: Vec<(Box<str>, Box<str>)> =
        match json.get("metadata").and_then(|m| m.get("annotations")) {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().into(), v.as_str()?.into())))
                .collect(),
            _ => Vec::new(),
        };
    out.sort_unstable();
    out.into_boxed_slice()
}

impl Kept {
    fn of<M>(obj: &impl Object<M>, keep: Keep) -> Self {
        let mut labels = Vec::new();
        if keep.labels {
            obj.for_each_label(&mut |k, v| labels.push((k.into(), v.into())));
            labels.sort_unstable();
        }
        let mut owners = Vec::new();
        if keep.owners {
            obj.for_each_owner_reference(&mut |o| owners.push(Owner::of(o)));
        }
        Self {
            labels: labels.into_boxed_slice(),
            annotations: if keep.annotations {
                annotations_of(obj)
            } else {
                Box::default()
            },
            owners: owners.into_boxed_slice(),
        }
    }
}

fn find<'a>(map: &'a [(Box<str>, Box<str>)], key: &str) -> Option<&'a str> {
    map.binary_search_by(|(k, _)| (**k).cmp(key))
        .ok()
        .map(|i| &*map[i].1)
}

/// How often (on the [`sync::now_nanos`] clock) a hit served through a hint is reported
/// to the cache's eviction policy, per body: 50 ms. The policy (quick_cache's, CLOCK-like)
/// asks whether an entry was read since its clock hand last passed it, and the hand
/// passes each entry once per `capacity / misses per second` (a second or more for any
/// cache that mostly hits), so one report per 50 ms loses nothing it uses; reporting
/// every hit would put the second probe the hint exists to avoid back on most hits of
/// a large, evenly read cache.
pub(super) const REPORT_EVERY: u64 = 50_000_000;

/// A reference's pointer to its cached body (see [`Reference`]).
pub(super) struct Hint {
    /// The body, of the store's `K` (a `Reference` is not generic over it).
    pub(super) body: Arc<dyn Any + Send + Sync>,
    /// The cache entry's expiry, on the [`sync::now_nanos`] clock.
    pub(super) expires: u64,
    /// The clock reading when a hit served from here was last reported to the cache,
    /// whose eviction policy must see the hits it no longer serves itself.
    pub(super) reported: Stamp,
}

impl Clone for Reference {
    fn clone(&self) -> Self {
        Self {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            resource_version: self.resource_version.clone(),
            key_hash: self.key_hash,
            // A clone is no entry's owner: nothing would clear a hint on it.
            hint: Slot::empty(),
            meta: self.meta.clone(),
        }
    }
}

/// Equal when they name the same object at the same version. The cache-key hash is left
/// out: it is seeded at random per store, so the same reference read from two stores
/// (or built by [`Reference::new`], unhashed) would otherwise compare unequal; the hint
/// is left out too (it is a cache detail, not part of what a reference says).
impl PartialEq for Reference {
    fn eq(&self, other: &Self) -> bool {
        self.namespace == other.namespace
            && self.name == other.name
            && self.uid == other.uid
            && self.resource_version == other.resource_version
    }
}

impl Eq for Reference {}

impl Reference {
    /// The reference of anything with metadata: a full object, a
    /// `PartialObjectMeta` from a metadata watch, or a JSON object.
    pub fn of<M>(obj: &impl Object<M>) -> Self {
        Self::of_kept(obj, Keep::default())
    }

    /// The reference of `obj`, with the parts of its metadata `keep` names.
    pub(crate) fn of_kept<M>(obj: &impl Object<M>, keep: Keep) -> Self {
        Self {
            namespace: obj.namespace().into(),
            name: obj.name().into(),
            uid: obj.uid().into(),
            resource_version: obj.resource_version().map(Into::into),
            key_hash: 0,
            hint: Slot::empty(),
            meta: keep.any().then(|| Box::new(Kept::of(obj, keep))),
        }
    }

    /// A reference from its parts (empty `uid`: identity by namespace and name).
    pub fn new(namespace: &str, name: &str, uid: &str, resource_version: Option<&str>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            resource_version: resource_version.map(Into::into),
            key_hash: 0,
            hint: Slot::empty(),
            meta: None,
        }
    }

    /// `metadata.namespace`, `""` for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.uid`, `""` when unknown.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// `metadata.resourceVersion` as the watch last reported it.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reference")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("resource_version", &self.resource_version)
            .finish()
    }
}

impl Object<via::Resource> for Reference {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn uid(&self) -> &str {
        &self.uid
    }
    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
    fn label(&self, key: &str) -> Option<&str> {
        find(&self.meta.as_ref()?.labels, key)
    }
    fn annotation(&self, key: &str) -> Option<&str> {
        find(&self.meta.as_ref()?.annotations, key)
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        if let Some(m) = &self.meta {
            for (k, v) in &m.labels {
                f(k, v);
            }
        }
    }
    fn for_each_owner_reference(&self, f: &mut dyn FnMut(OwnerRef<'_>)) {
        if let Some(m) = &self.meta {
            for o in &m.owners {
                f(o.as_ref());
            }
        }
    }
    fn for_each_finalizer(&self, _: &mut dyn FnMut(&str)) {}
    fn to_json(&self) -> Result<Cow<'_, Value>, serde_json::Error> {
        let mut meta = serde_json::json!({
            "namespace": &*self.namespace,
            "name": &*self.name,
            "uid": &*self.uid,
            "resourceVersion": self.resource_version.as_deref(),
        });
        if let Some(m) = &self.meta {
            let map = |entries: &[(Box<str>, Box<str>)]| {
                Value::Object(
                    entries
                        .iter()
                        .map(|(k, v)| (k.to_string(), Value::from(&**v)))
                        .collect(),
                )
            };
            meta["labels"] = map(&m.labels);
            meta["annotations"] = map(&m.annotations);
            meta["ownerReferences"] = m
                .owners
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "apiVersion": o.api_version.as_deref(),
                        "kind": o.kind.as_deref(),
                        "name": o.name.as_deref(),
                        "uid": o.uid.as_deref(),
                        "controller": o.controller,
                        "blockOwnerDeletion": o.block_owner_deletion,
                    })
                })
                .collect();
        }
        Ok(Cow::Owned(serde_json::json!({ "metadata": meta })))
    }
}
