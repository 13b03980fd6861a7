//! A group of a prefix index: the objects whose first components of the key are one
//! encoded prefix, in (namespace, name, uid) order.

use std::cmp::Ordering;
use std::marker::PhantomData;

use crate::index::ptree::{Elem, Sep, SepBuilder, StateTree, Target};
use crate::index::retire::Unowned;
use crate::sync::Arc;

/// The objects under one encoded key prefix (see the module documentation).
///
/// The members are the objects themselves (`E = Unowned<K>`: the primary key's
/// groups) or the [`Member`](crate::index::latest::Member)s of their identities (the
/// secondary indexes' groups).
pub(crate) struct Group<K, E = Unowned<K>> {
    pub(crate) prefix: Prefix,
    pub(crate) members: StateTree<E>,
    pub(crate) objects: PhantomData<fn() -> K>,
}

impl<K, E: Clone> Group<K, E> {
    /// The group of `prefix` with `members`.
    pub(crate) fn new(prefix: Prefix, members: StateTree<E>) -> Self {
        Self {
            prefix,
            members,
            objects: PhantomData,
        }
    }
}

/// Most bytes of an encoded prefix kept inline in its [`Group`].
const INLINE: usize = 30;

/// A group's encoded key prefix: inline when it is short, as a namespace's is (most
/// stores' groups), else shared.
///
/// A write copies the leaf of the groups' tree that holds the changed group, and with
/// it every group in that leaf. Inline, a copy is a plain copy of bytes already in the
/// leaf; shared, it is a reference-count increment (and a decrement when the copy is
/// freed) on each prefix, which measured about 7% of a single write at 100
/// namespaces. Inline also keeps the bytes that a search of the leaf compares in the
/// leaf itself.
#[derive(Clone)]
pub(crate) enum Prefix {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl std::ops::Deref for Prefix {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Prefix::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Prefix::Shared(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for Prefix {
    fn from(prefix: &[u8]) -> Self {
        match u8::try_from(prefix.len()) {
            Ok(len) if prefix.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..prefix.len()].copy_from_slice(prefix);
                Prefix::Inline { len, bytes }
            }
            _ => Prefix::Shared(prefix.into()),
        }
    }
}

impl From<Vec<u8>> for Prefix {
    fn from(prefix: Vec<u8>) -> Self {
        if prefix.len() <= INLINE {
            Self::from(&prefix[..])
        } else {
            Prefix::Shared(prefix.into())
        }
    }
}
impl<K> Elem for Unowned<K> {}

impl<K, E: Elem> Elem for Group<K, E> {
    #[allow(unsafe_code)]
    unsafe fn free_trees(&mut self) {
        // SAFETY: the caller's promise: the groups' tree is freed whole, and with it the
        // members' tree each of its groups owns alone (a group's tree is shared only
        // with copies of the group in older versions, which are out of use too).
        unsafe { self.members.free_whole() };
    }
}

/// Finds the group of the encoded key prefix `prefix` (groups order by their bytes).
pub(crate) fn by_prefix<K, E>(prefix: &[u8]) -> Target<impl Fn(&Group<K, E>) -> Ordering + '_> {
    Target {
        sep: SepBuilder::new().bytes(prefix).finish(),
        cmp: move |g: &Group<K, E>| g.prefix[..].cmp(prefix),
    }
}

pub(crate) fn group_sep<K, E>(g: &Group<K, E>) -> Sep {
    SepBuilder::new().bytes(&g.prefix).finish()
}

impl<K, E> Clone for Group<K, E> {
    fn clone(&self) -> Self {
        Self {
            prefix: self.prefix.clone(),
            members: self.members.clone(),
            objects: PhantomData,
        }
    }
}
