//! The cache's keys (namespace and name, hashed once) and entries (a body with its
//! resourceVersion, expiry, weight and owning reference).

use super::reference::Reference;
use std::hash::{Hash, Hasher};

use crate::error::FetchError;
use crate::index::key::short_eq;
use crate::on_demand::fetch::Fetched;
use crate::sync::{Arc, CacheValue};

/// The cache's key: namespace and name (what a `GET` needs), with the store's hash of
/// them, computed once. Both strings live in one allocation (`namespace` then `name`),
/// so comparing a key reads one cache line, not two.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct CacheKey {
    pub(super) hash: u64,
    pub(super) text: Box<str>,
    pub(super) namespace_len: usize,
}

impl CacheKey {
    pub(super) fn is(&self, namespace: &str, name: &str) -> bool {
        let text = self.text.as_bytes();
        self.namespace_len == namespace.len()
            && text.len() == namespace.len() + name.len()
            && short_eq(&text[namespace.len()..], name.as_bytes())
            && short_eq(&text[..namespace.len()], namespace.as_bytes())
    }
}

/// A borrowed [`CacheKey`] for allocation-free lookups; hashes identically.
#[derive(Clone, Copy)]
pub(super) struct KeyRef<'a> {
    pub(super) hash: u64,
    pub(super) namespace: &'a str,
    pub(super) name: &'a str,
}

pub(super) fn hash_key<H: Hasher>(namespace: &str, name: &str, h: &mut H) {
    h.write(namespace.as_bytes());
    h.write_u8(0xff); // never part of UTF-8: namespace/name boundaries cannot shift
    h.write(name.as_bytes());
}

// Both hash the precomputed hash only: equal keys have equal precomputed hashes.
impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

impl quick_cache::Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        key.hash == self.hash && key.is(self.namespace, self.name)
    }
}

impl KeyRef<'_> {
    pub(super) fn to_owned(self) -> CacheKey {
        let mut text = String::with_capacity(self.namespace.len() + self.name.len());
        text.push_str(self.namespace);
        text.push_str(self.name);
        CacheKey {
            hash: self.hash,
            text: text.into_boxed_str(),
            namespace_len: self.namespace.len(),
        }
    }
}

/// A cached body.
pub(super) struct Entry<K> {
    pub(super) object: Arc<K>,
    pub(super) resource_version: Version,
    /// On the [`sync::now_nanos`] clock.
    pub(super) expires: u64,
    /// The body's size on the wire (an API server caps objects far below 4 GiB).
    pub(super) bytes: u32,
    /// Whether the entry weighs its bytes (a byte budget) or 1.
    pub(super) weigh_bytes: bool,
    /// The reference whose hint points at this body, if any: whoever drops the entry
    /// from the cache clears that hint ([`Entry::release`]).
    pub(super) owner: Option<Arc<Reference>>,
}

impl<K> Entry<K> {
    /// Clears the owner's hint: called for every entry the cache drops. Unconditional:
    /// a reference's hint is only set by a fill that has first removed any earlier
    /// entry of that key under the same cache shard lock, so the hint cleared here is
    /// this entry's (or, after a lost race with a concurrent expiry, a newer one, which
    /// only costs the next hit the cache's own probe).
    pub(super) fn release(&self) {
        if let Some(owner) = &self.owner {
            owner.hint.set(None);
        }
    }
}

// By hand: a derive would ask for `K: Clone`.
impl<K> Clone for Entry<K> {
    fn clone(&self) -> Self {
        Self {
            object: Arc::clone(&self.object),
            resource_version: self.resource_version.clone(),
            expires: self.expires,
            bytes: self.bytes,
            weigh_bytes: self.weigh_bytes,
            owner: self.owner.clone(),
        }
    }
}

impl<K> CacheValue for Entry<K> {
    fn weight(&self) -> u64 {
        if self.weigh_bytes {
            u64::from(self.bytes.max(1))
        } else {
            1
        }
    }
}

/// A cached body's resourceVersion, held so that copying an entry out of the cache on
/// a hit copies 16 bytes instead of touching a shared reference count. Versions are
/// opaque strings; the API server's are decimal numbers, which fit inline up to 14
/// digits (a cluster would need 10^14 writes to go past that).
#[derive(Clone)]
pub(super) enum Version {
    Absent,
    Inline {
        len: u8,
        bytes: [u8; Version::INLINE],
    },
    Heap(Arc<String>),
}

impl Version {
    const INLINE: usize = 14;

    pub(super) fn of(rv: Option<&str>) -> Self {
        match rv {
            None => Version::Absent,
            Some(rv) if rv.len() <= Self::INLINE => {
                let mut bytes = [0; Self::INLINE];
                bytes[..rv.len()].copy_from_slice(rv.as_bytes());
                // `rv.len() <= INLINE` (the guard): the cast cannot truncate.
                Version::Inline {
                    len: rv.len() as u8,
                    bytes,
                }
            }
            Some(rv) => Version::Heap(Arc::new(rv.to_owned())),
        }
    }

    pub(super) fn is(&self, rv: &str) -> bool {
        match self {
            Version::Absent => false,
            Version::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .is_some_and(|v| short_eq(v, rv.as_bytes())),
            Version::Heap(v) => v.as_str() == rv,
        }
    }
}

/// A fetch's outcome as the leader shares it with every waiter: the error behind an
/// `Arc`, as moka shares `Arc<E>`, so each waiter gets the same error, cause and all.
pub(super) type FetchResult<K> = Result<Option<Fetched<K>>, Arc<FetchError>>;
