//! [`Snapshot`]: an immutable view of a whole store.

use crate::index::ptree::{self, PTree};
use crate::sync::Arc;

/// An immutable snapshot of every object in a store, in (namespace, name, uid) order.
///
/// Taking one is O(1) and never blocks; later writes to the store do not change it
/// (they build new versions that share unchanged parts with it). Cloning is O(1).
/// Iteration is in order, allocation-free after the first step.
///
/// # Examples
/// ```
/// # use std::sync::Arc;
/// # use k8s_openapi::api::core::v1::ConfigMap;
/// # let store = k8s_store::MemoryStore::<ConfigMap>::new(1)?;
/// let snapshot = store.list();
/// for cm in &snapshot {
///     println!("{:?}", cm.metadata.name);
/// }
/// assert_eq!(snapshot.iter().count(), snapshot.len());
/// # Ok::<(), k8s_store::StoreError>(())
/// ```
pub struct Snapshot<K> {
    tree: PTree<Arc<K>>,
}

impl<K> Snapshot<K> {
    pub(crate) fn new(tree: PTree<Arc<K>>) -> Self {
        Self { tree }
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tree.len() == 0
    }

    /// The objects in (namespace, name, uid) order.
    pub fn iter(&self) -> Iter<'_, K> {
        Iter {
            inner: self.tree.iter(),
        }
    }

    /// The objects as a vector of shared handles (one reference-count increment each).
    pub fn to_vec(&self) -> Vec<Arc<K>> {
        self.iter().cloned().collect()
    }
}

impl<K> Clone for Snapshot<K> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
        }
    }
}

impl<K> std::fmt::Debug for Snapshot<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the objects: they may be Secrets.
        f.debug_struct("Snapshot")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Iterator over a [`Snapshot`], in (namespace, name, uid) order.
#[derive(Debug)]
pub struct Iter<'a, K> {
    inner: ptree::Iter<'a, Arc<K>>,
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = &'a Arc<K>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<K> ExactSizeIterator for Iter<'_, K> {}

impl<'a, K> IntoIterator for &'a Snapshot<K> {
    type Item = &'a Arc<K>;
    type IntoIter = Iter<'a, K>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
