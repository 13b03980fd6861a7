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
//! [`Group`]: crate::index::group::Group

use crate::error::{ErrorKind, StoreError};
use crate::feed::indexer::Indexer;
use crate::feed::keys::Components;
use crate::index::group::Group;
use crate::index::key;
use crate::index::ptree::StateTree;
use crate::object::Object;

/// How a secondary index reads an object's keys (an [`Indexer`] bound to the store's
/// object type when the store is built).
type Extract<K> = dyn Fn(&K) -> Result<Vec<Vec<u8>>, StoreError> + Send + Sync;

/// A secondary index's definition: its name, its key count and how it reads keys.
pub(crate) struct Secondary<K> {
    pub(crate) name: String,
    pub(crate) num_keys: usize,
    extract: Box<Extract<K>>,
}

impl<K> std::fmt::Debug for Secondary<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secondary")
            .field("name", &self.name)
            .field("num_keys", &self.num_keys)
            .finish_non_exhaustive()
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
            match indexer.key_list(obj) {
                Ok(keys) => Ok(vec![key::encode(&keys.parts())]),
                // A missing field: the object is in no group of this index.
                Err(e) if matches!(e.kind, ErrorKind::MissingField { .. }) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        Self {
            name,
            num_keys,
            extract: Box::new(extract),
        }
    }

    /// `obj`'s distinct keys in this index, encoded, in byte order.
    ///
    /// # Errors
    /// What the indexer says of the object (a field that is not a scalar, too many
    /// values).
    pub(crate) fn keys_of(&self, obj: &K) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = (self.extract)(obj)?;
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
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
    pub(crate) depths: Box<[StateTree<Group<K>>]>,
}

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
