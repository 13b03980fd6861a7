//! [`Reference`]: what the on-demand index keeps of an object, and its *hint*, the
//! pointer to its cached body.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::object::{Object, via};
use crate::sync::{Arc, Slot, Stamp};

/// What the on-demand index keeps of an object: who it is and which version the watch
/// last reported. No body, no labels, no annotations.
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
        Self {
            namespace: obj.namespace().into(),
            name: obj.name().into(),
            uid: obj.uid().into(),
            resource_version: obj.resource_version().map(Into::into),
            key_hash: 0,
            hint: Slot::empty(),
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
    fn label(&self, _: &str) -> Option<&str> {
        None
    }
    fn annotation(&self, _: &str) -> Option<&str> {
        None
    }
    fn to_json(&self) -> Result<Cow<'_, Value>, serde_json::Error> {
        Ok(Cow::Owned(serde_json::json!({
            "metadata": {
                "namespace": &*self.namespace,
                "name": &*self.name,
                "uid": &*self.uid,
                "resourceVersion": self.resource_version.as_deref(),
            }
        })))
    }
}
