//! Secondary indexes of a memory store: named lists of field paths beside the primary
//! key, each answering exact and prefix lookups.
//!
//! An index of `n` components keeps, in the published state, one tree of groups per
//! depth `d` in `1..=n`: the group of an encoded prefix of `d` components holds every
//! object that has a key in the index with that prefix, in (namespace, name, uid)
//! order, once however many of its keys share the prefix. A lookup of `d` components is
//! one group; a write changes the groups of the prefixes the object left or joined (and
//! replaces it in place in the others). The groups are the primary key's [`Group`]s,
//! so the trees, their snapshots and their reclamation are the same code.
//!
//! An object's keys in an index come from its [`Indexer`]: any number of them (paths
//! with `[*]` are multi-valued), none when a field is missing (the object is then in no
//! group of that index, as client-go's and controller-runtime's index functions that
//! return nothing). They are computed from the object on every write, the replaced
//! version's included, so nothing per object is kept for them.
//!
//! The groups hold [`Member`]s, not the objects: a write that leaves an object's keys
//! as they were touches none of its groups (see [`latest`](crate::index::latest)).
//!
//! [`Group`]: crate::index::group::Group

use std::collections::BTreeSet;

use crate::error::{ErrorKind, StoreError};
use crate::feed::indexer::Indexer;
use crate::feed::keys::Components;
use crate::index::group::Group;
use crate::index::key;
use crate::index::latest::Member;
use crate::index::ptree::StateTree;
use crate::object::Object;

/// How a secondary index reads an object's keys (an [`Indexer`] bound to the store's
/// object type when the store is built).
type Extract<K> = dyn Fn(&K) -> Result<Vec<Vec<u8>>, StoreError> + Send + Sync;

/// A secondary index's definition: its name, its key count and how it reads keys.
pub(crate) struct Secondary<K> {
    pub(crate) name: String,
    pub(crate) num_keys: usize,
    /// Whether this is the store's label index (keys `[label key, value]`, one per
    /// indexed label), which answers selectors and is not looked up by name. It keeps
    /// only its depth-2 groups, one per (key, value): a depth-1 group (every object
    /// with a label key) would be one more large tree that every write of every object
    /// carrying the key changes, for `key` terms alone.
    pub(crate) labels: bool,
    extract: Box<Extract<K>>,
}

/// Which label keys a [`MemoryStore`](crate::MemoryStore) indexes, so that
/// [`select`](crate::MemoryReader::select) answers a selector from the objects that
/// carry one of its labels instead of from every object (see
/// [`MemoryStoreBuilder::label_index`](crate::MemoryStoreBuilder::label_index)). In the
/// configuration: `index_labels: all` or a list of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelIndex {
    /// Every label key.
    All,
    /// These label keys only.
    Keys(BTreeSet<String>),
}

impl LabelIndex {
    /// The label keys `keys` only.
    pub fn keys<I, S>(keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        LabelIndex::Keys(keys.into_iter().map(Into::into).collect())
    }

    /// Whether the label key `key` is indexed.
    pub fn covers(&self, key: &str) -> bool {
        match self {
            LabelIndex::All => true,
            LabelIndex::Keys(keys) => keys.contains(key),
        }
    }
}

impl<K> std::fmt::Debug for Secondary<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secondary")
            .field("name", &self.name)
            .field("num_keys", &self.num_keys)
            .finish_non_exhaustive()
    }
}

impl<K> Secondary<K> {
    /// The depths whose groups this index keeps (see [`labels`](Self::labels)).
    pub(crate) fn depths(&self) -> std::ops::RangeInclusive<usize> {
        let first = if self.labels { 2 } else { 1 };
        first..=self.num_keys
    }
}

impl<K: 'static> Secondary<K> {
    /// The index `name` over `indexer`'s paths, for objects of type `K`.
    pub(crate) fn new<M>(name: String, indexer: Indexer) -> Self
    where
        K: Object<M>,
    {
        let num_keys = indexer.len();
        let extract = move |obj: &K| -> Result<Vec<Vec<u8>>, StoreError> {
            // Every key of the object (several for `[*]` paths, none for a missing
            // field), distinct.
            Ok(indexer
                .key_sets(obj)?
                .iter()
                .map(|k| key::encode(&k.parts()))
                .collect())
        };
        Self {
            name,
            num_keys,
            labels: false,
            extract: Box::new(extract),
        }
    }

    /// The label index over the label keys `which` covers: one key `[label key,
    /// value]` per indexed label of an object.
    pub(crate) fn labels<M>(which: LabelIndex) -> Self
    where
        K: Object<M>,
    {
        let extract = move |obj: &K| -> Result<Vec<Vec<u8>>, StoreError> {
            let mut keys = Vec::new();
            obj.for_each_label(&mut |k, v| {
                if which.covers(k) {
                    keys.push(key::encode(&[k, v]));
                }
            });
            Ok(keys)
        };
        Self {
            name: "labels".into(),
            num_keys: 2,
            labels: true,
            extract: Box::new(extract),
        }
    }

    /// `obj`'s distinct keys in this index, encoded, in byte order.
    ///
    /// # Errors
    /// What the indexer says of the object (a field that is not a scalar, too many
    /// values: [`ErrorKind::TooManyValues`] then names this index).
    pub(crate) fn keys_of(&self, obj: &K) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = (self.extract)(obj).map_err(|mut e| {
            // The indexer does not know which index it serves: this one.
            if let ErrorKind::TooManyValues(t) = &mut e.kind {
                t.index = Some(self.name.clone());
            }
            e
        })?;
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
}

/// An object's *label marks*: a 64-bit summary of its keys in the label index, the
/// union of their [`mark`]s, which its identity's member keeps with each version (see
/// [`latest`](crate::index::latest)).
///
/// A selector answered from the label index walks the list of one term and checks the
/// others on each object it lists. An equality or `in` term on an indexed label key
/// can be refused from the marks alone: an object whose marks lack every bit of a
/// term's value cannot carry it, and is passed over without reading its labels (a
/// few dependent cache misses: the map, its keys, the value). An object whose marks
/// have them is checked on its labels as before, so the marks never change an answer,
/// only its cost. With five labels (ten bits set of 64), a value absent from an object
/// passes the marks about one time in fifty.
pub(crate) fn marks_of(label_keys: &[Vec<u8>]) -> u64 {
    label_keys.iter().fold(0, |marks, k| marks | mark(k))
}

/// The two bits that the label index key `key` (encoded `[label key, value]`) sets in
/// an object's [`marks_of`].
pub(crate) fn mark(key: &[u8]) -> u64 {
    // FNV-1a, then a multiply-xorshift finaliser so that the top bits depend on every
    // byte; the two bits are numbered by its top two sextets.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (1 << (h >> 58)) | (1 << ((h >> 52) & 63))
}

/// One object's keys in every secondary index of a store (see [`Secondary::keys_of`]),
/// in the order of the store's indexes.
pub(crate) type SecondaryKeys = Vec<Vec<Vec<u8>>>;

/// The distinct prefixes of `depth` components of `keys` (encoded and in byte order, as
/// [`Secondary::keys_of`] gives them), in order: keys that share a prefix are adjacent
/// in byte order, so duplicates are too.
pub(crate) fn prefixes(keys: &[Vec<u8>], depth: usize) -> impl Iterator<Item = &[u8]> {
    let mut last: Option<&[u8]> = None;
    keys.iter().filter_map(move |k| {
        let p = &k[..crate::index::bucket::prefix_len(k, depth)];
        if last == Some(p) {
            None
        } else {
            last = Some(p);
            Some(p)
        }
    })
}

/// A secondary index in the published state: `depths[d - 1]` holds the groups of the
/// prefixes of `d` components.
pub(crate) struct SecondaryState<K> {
    pub(crate) depths: Box<[StateTree<MemberGroup<K>>]>,
}

/// A group of a secondary index: its members are its objects' identities' [`Member`]s.
pub(crate) type MemberGroup<K> = Group<K, Member<K>>;

impl<K> SecondaryState<K> {
    pub(crate) fn empty(num_keys: usize) -> Self {
        Self {
            depths: (0..num_keys).map(|_| StateTree::default()).collect(),
        }
    }
}

impl<K> Clone for SecondaryState<K> {
    fn clone(&self) -> Self {
        Self {
            depths: self.depths.clone(),
        }
    }
}
