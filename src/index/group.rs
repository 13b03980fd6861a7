//! A group of a prefix index: the objects whose first components of the key are one
//! encoded prefix, in (namespace, name, uid) order.

use std::cmp::Ordering;

use crate::index::ptree::{Elem, Sep, SepBuilder, StateTree, Target};
use crate::index::retire::Unowned;
use crate::sync::Arc;

/// The objects under one encoded key prefix (see the module documentation).
pub(crate) struct Group<K> {
    pub(crate) prefix: Arc<[u8]>,
    pub(crate) members: StateTree<Unowned<K>>,
}
impl<K> Elem for Unowned<K> {}

impl<K> Elem for Group<K> {
    #[allow(unsafe_code)]
    unsafe fn free_trees(&mut self) {
        // SAFETY: the caller's promise: the groups' tree is freed whole, and with it the
        // members' tree each of its groups owns alone (a group's tree is shared only
        // with copies of the group in older versions, which are out of use too).
        unsafe { self.members.free_whole() };
    }
}

/// Finds the group of the encoded key prefix `prefix` (groups order by their bytes).
pub(crate) fn by_prefix<K>(prefix: &[u8]) -> Target<impl Fn(&Group<K>) -> Ordering + '_> {
    Target {
        sep: SepBuilder::new().bytes(prefix).finish(),
        cmp: move |g: &Group<K>| g.prefix[..].cmp(prefix),
    }
}

pub(crate) fn group_sep<K>(g: &Group<K>) -> Sep {
    SepBuilder::new().bytes(&g.prefix).finish()
}

impl<K> Clone for Group<K> {
    fn clone(&self) -> Self {
        Self {
            prefix: Arc::clone(&self.prefix),
            members: self.members.clone(),
        }
    }
}
