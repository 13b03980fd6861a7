//! One exact composite key and the objects stored under it.
//!
//! Most keys hold one object, and most key components of real indexes are the object's
//! own namespace or name (`index_by: [metadata.namespace, metadata.name]`). Such a
//! bucket stores no key bytes at all: an [`Bucket::Elided`] bucket records, two bits a
//! component, that component `i` *is* the object's namespace or name, and reads the
//! strings from the object when it compares or rehashes. Every other bucket stores its
//! key encoded (see [`crate::index::key`]) and its members in a persistent tree, so a reader can
//! take them out in O(1) under the shard lock and copy them after releasing it.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::index::key::{self, KeyHasher};
use crate::index::ptree::{PTree, Sep, SepBuilder, Target};
use crate::object::{Accessors, MetaView};
use crate::sync::Arc;

/// At most this many components can be elided (two bits each in a `u32`).
const MAX_ELIDED: usize = 16;
const FROM_NAMESPACE: u32 = 1;
const FROM_NAME: u32 = 2;

pub(crate) enum Bucket<K> {
    /// One object; component `i` is its namespace when bits `2i..2i+2` of `pattern` are
    /// `1`, its name when they are `2`.
    Elided { obj: Arc<K>, pattern: u32 },
    /// Any number of objects under a stored key.
    Owned(Box<Owned<K>>),
}

pub(crate) struct Owned<K> {
    key: Box<[u8]>,
    members: PTree<Arc<K>>,
}

/// The members of a bucket, taken out under the shard lock and read after it.
pub(crate) enum Members<K> {
    One(Arc<K>),
    Many(PTree<Arc<K>>),
}

impl<K> Members<K> {
    pub(crate) fn into_objects(self) -> crate::Objects<K> {
        match self {
            Members::One(o) => crate::Objects::one(o),
            Members::Many(t) => t.iter().cloned().collect(),
        }
    }
}

/// The elision pattern of `keys` for the object `view`, if every component is the
/// object's namespace or name.
pub(crate) fn elide<S: AsRef<str>>(keys: &[S], view: &MetaView<'_>) -> Option<u32> {
    if keys.len() > MAX_ELIDED {
        return None;
    }
    let mut pattern = 0;
    for (i, k) in keys.iter().enumerate() {
        let k = k.as_ref();
        let code = if k == view.namespace {
            FROM_NAMESPACE
        } else if k == view.name {
            FROM_NAME
        } else {
            return None;
        };
        pattern |= code << (2 * i);
    }
    Some(pattern)
}

/// The components an elided pattern stands for.
fn elided_components<'a>(
    pattern: u32,
    num_keys: usize,
    view: MetaView<'a>,
) -> impl Iterator<Item = &'a str> {
    (0..num_keys).map(move |i| match (pattern >> (2 * i)) & 3 {
        FROM_NAMESPACE => view.namespace,
        _ => view.name,
    })
}

/// Orders objects by (namespace, name, uid) relative to `target`.
pub(crate) fn by_order<'t, K, E: AsRef<K>>(
    acc: Accessors<K>,
    target: MetaView<'t>,
) -> Target<impl Fn(&E) -> Ordering + 't>
where
    K: 't,
{
    Target {
        sep: meta_sep(&target),
        cmp: move |e: &E| (acc.meta)(e.as_ref()).order(&target),
    }
}

/// The [`Sep`] of an object in (namespace, name, uid) order.
pub(crate) fn sep_of<K, E: AsRef<K>>(acc: Accessors<K>) -> impl Fn(&E) -> Sep {
    move |e| meta_sep(&(acc.meta)(e.as_ref()))
}

/// The [`Sep`] of [`MetaView::order`]: its first 32 bytes, kept inline in the index's
/// inner tree nodes for routing without reading objects. (Here, not on `MetaView`: the
/// ground floor of the crate knows nothing of the index's trees.)
pub(crate) fn meta_sep(view: &MetaView<'_>) -> Sep {
    let mut b = SepBuilder::new();
    b.add_component(view.namespace.as_bytes());
    b.add_component(view.name.as_bytes());
    b.add_component(view.uid.as_bytes());
    b.finish()
}

impl<K> Bucket<K> {
    /// A bucket holding just `obj` under `keys`.
    pub(crate) fn new<S: AsRef<str>>(obj: Arc<K>, keys: &[S], acc: Accessors<K>) -> Self {
        let elision = elide(keys, &(acc.meta)(&obj));
        Self::with_elision(obj, keys, elision)
    }

    /// [`new`](Self::new) with `elide(keys, obj)` worked out already.
    pub(crate) fn with_elision<S: AsRef<str>>(
        obj: Arc<K>,
        keys: &[S],
        elision: Option<u32>,
    ) -> Self {
        match elision {
            Some(pattern) => Bucket::Elided { obj, pattern },
            None => Bucket::Owned(Box::new(Owned {
                key: key::encode(keys).into(),
                members: PTree::single(obj, &()),
            })),
        }
    }

    /// Whether this bucket's key is exactly `keys`.
    pub(crate) fn key_is<S: AsRef<str>>(&self, keys: &[S], acc: Accessors<K>) -> bool {
        match self {
            Bucket::Elided { obj, pattern } => {
                let view = (acc.meta)(obj);
                keys.iter()
                    .zip(elided_components(*pattern, keys.len(), view))
                    .all(|(k, c)| key::short_eq(k.as_ref().as_bytes(), c.as_bytes()))
            }
            Bucket::Owned(o) => key::encoded_eq(&o.key, keys),
        }
    }

    /// The bucket's key, encoded.
    pub(crate) fn encoded_key(&self, num_keys: usize, acc: Accessors<K>) -> Cow<'_, [u8]> {
        match self {
            Bucket::Elided { obj, pattern } => {
                let mut out = Vec::new();
                for c in elided_components(*pattern, num_keys, (acc.meta)(obj)) {
                    key::encode_component(&mut out, c.as_bytes());
                }
                Cow::Owned(out)
            }
            Bucket::Owned(o) => Cow::Borrowed(&o.key),
        }
    }

    /// The hash of the bucket's key, for rehashing the table.
    pub(crate) fn hash(&self, num_keys: usize, hasher: &KeyHasher, acc: Accessors<K>) -> u64 {
        match self {
            Bucket::Elided { obj, pattern } => hasher.hash_components(
                elided_components(*pattern, num_keys, (acc.meta)(obj)).map(str::as_bytes),
            ),
            Bucket::Owned(o) => {
                let mut parts: Vec<Vec<u8>> = Vec::new();
                key::for_each_component(&o.key, |c| parts.push(c.to_vec()));
                hasher.hash_components(parts.iter().map(Vec::as_slice))
            }
        }
    }

    /// Takes the members out: O(1), so the shard lock is held only for this.
    pub(crate) fn members(&self) -> Members<K> {
        match self {
            Bucket::Elided { obj, .. } => Members::One(Arc::clone(obj)),
            Bucket::Owned(o) => Members::Many(o.members.clone()),
        }
    }

    /// The bucket's only member, or how many it has.
    pub(crate) fn single(&self) -> Result<&Arc<K>, usize> {
        match self {
            Bucket::Elided { obj, .. } => Ok(obj),
            // Only a one-member tree is walked (a deeper walk would allocate its stack).
            Bucket::Owned(o) if o.members.len() == 1 => o.members.iter().next().ok_or(0),
            Bucket::Owned(o) => Err(o.members.len()),
        }
    }

    /// Whether this is the bucket of `keys` that holds `member`, where `member` is
    /// stored under `keys`: a bucket of one object answers by pointer, reading no
    /// object; any other by its key.
    pub(crate) fn holds<S: AsRef<str>>(&self, member: &Arc<K>, keys: &[S]) -> bool {
        match self {
            Bucket::Elided { obj, .. } => Arc::ptr_eq(obj, member),
            Bucket::Owned(o) => key::encoded_eq(&o.key, keys),
        }
    }

    /// Puts `obj` (under this bucket's key, `keys`) in place of `member`, a member that
    /// orders as `obj` (see [`holds`](Self::holds)): as [`insert`](Self::insert), without
    /// reading `member` when it is the only one.
    pub(crate) fn replace<S: AsRef<str>>(
        &mut self,
        member: &Arc<K>,
        obj: Arc<K>,
        keys: &[S],
        acc: Accessors<K>,
    ) {
        match self {
            Bucket::Elided { obj: cur, .. } if Arc::ptr_eq(cur, member) => {
                *self = Bucket::new(obj, keys, acc);
            }
            _ => self.insert(obj, keys, acc),
        }
    }

    /// Whether the object `target` (by order, which implies identity) is a member.
    pub(crate) fn contains(&self, target: MetaView<'_>, acc: Accessors<K>) -> bool {
        match self {
            Bucket::Elided { obj, .. } => (acc.meta)(obj).order(&target) == Ordering::Equal,
            Bucket::Owned(o) => o.members.get(&by_order(acc, target)).is_some(),
        }
    }

    /// Adds `obj` (whose key is this bucket's key, `keys`), replacing an equal member.
    pub(crate) fn insert<S: AsRef<str>>(&mut self, obj: Arc<K>, keys: &[S], acc: Accessors<K>) {
        let view = (acc.meta)(&obj);
        match self {
            Bucket::Elided { obj: cur, .. } if (acc.meta)(cur).order(&view) == Ordering::Equal => {
                *self = Bucket::new(obj, keys, acc);
            }
            Bucket::Elided { obj: cur, .. } => {
                // `obj` is not equal to `cur`, checked above.
                let obj_first = view.order(&(acc.meta)(cur)) == Ordering::Less;
                let pair = if obj_first {
                    vec![obj, Arc::clone(cur)]
                } else {
                    vec![Arc::clone(cur), obj]
                };
                let members = PTree::from_sorted(pair, sep_of(acc), &());
                *self = Bucket::Owned(Box::new(Owned {
                    key: key::encode(keys).into(),
                    members,
                }));
            }
            Bucket::Owned(o) => {
                let replaced =
                    o.members
                        .insert(Arc::clone(&obj), &by_order(acc, view), sep_of(acc), &mut ());
                drop(replaced);
            }
        }
    }

    /// Removes the member equal to `target`; returns whether the bucket is now empty.
    /// A bucket left with one member goes back to the elided form when it can.
    pub(crate) fn remove(
        &mut self,
        target: MetaView<'_>,
        num_keys: usize,
        acc: Accessors<K>,
    ) -> bool {
        match self {
            Bucket::Elided { obj, .. } => (acc.meta)(obj).order(&target) == Ordering::Equal,
            Bucket::Owned(o) => {
                o.members
                    .remove(&by_order(acc, target), sep_of(acc), &mut ());
                let emptied = o.members.is_empty();
                if o.members.len() == 1
                    && let Some(last) = o.members.iter().next().cloned()
                {
                    let mut parts = Vec::with_capacity(num_keys);
                    key::for_each_component(&o.key, |c| {
                        parts.push(String::from_utf8_lossy(c).into_owned())
                    });
                    if let Some(pattern) = elide(&parts, &(acc.meta)(&last)) {
                        *self = Bucket::Elided { obj: last, pattern };
                    }
                }
                emptied
            }
        }
    }

    /// Checks the bucket's own invariants.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn validate(&self, num_keys: usize, acc: Accessors<K>) -> Result<(), String> {
        match self {
            Bucket::Elided { pattern, .. } => {
                if num_keys > MAX_ELIDED
                    || (num_keys < MAX_ELIDED && pattern >> (2 * num_keys) != 0)
                {
                    return Err(format!("elided pattern {pattern:#x} for {num_keys} keys"));
                }
                Ok(())
            }
            Bucket::Owned(o) => {
                let parts = key::decode(&o.key).map_err(|e| e.to_string())?;
                if parts.len() != num_keys {
                    return Err(format!(
                        "stored key has {} components, not {num_keys}",
                        parts.len()
                    ));
                }
                if o.members.is_empty() {
                    return Err("empty bucket left in the table".into());
                }
                o.members
                    .validate(|a, b| (acc.meta)(a).order(&(acc.meta)(b)), sep_of(acc))
            }
        }
    }

    /// Every member, for invariant checks.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<K>)) {
        match self {
            Bucket::Elided { obj, .. } => f(obj),
            Bucket::Owned(o) => o.members.iter().for_each(f),
        }
    }
}

/// The byte length of the first `depth` components of a valid encoding.
pub(crate) fn prefix_len(encoded: &[u8], depth: usize) -> usize {
    let mut seen = 0;
    let mut i = 0;
    while i + 1 < encoded.len() && seen < depth {
        if encoded[i] == 0 {
            if encoded[i + 1] == 1 {
                seen += 1;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    i
}
