//! [`Snapshot`]: an immutable view of a whole store.

use crate::index::ptree::{self, Draft, PTree, StateTree};
use crate::index::retire::{Generation, Unowned};
use crate::sync::Arc;

/// An immutable snapshot of every object in a store, in (namespace, name, uid) order.
///
/// Taking one is O(1) and never blocks; later writes to the store do not change it
/// (they build new versions that share unchanged parts with it). Cloning is O(1).
/// Iteration is in order, allocation-free after the first step.
///
/// A snapshot keeps its objects alive, and also every object the store replaces or
/// removes while the snapshot is held: the store's trees hold objects without
/// reference counts (so that a write copies pointers, not counts), and what a write
/// replaces is released once no older snapshot can reach it. Drop snapshots when done
/// with them; one held for minutes on a busy store holds every version written since.
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
    tree: StateTree<Unowned<K>>,
    /// Keeps the tree's objects alive (see [`retire`](crate::index::retire)).
    generation: Arc<Generation<K>>,
}

impl<K> Snapshot<K> {
    pub(crate) fn new(tree: StateTree<Unowned<K>>, generation: Arc<Generation<K>>) -> Self {
        Self { tree, generation }
    }

    /// A snapshot of `objects`, in the order given, that holds them itself.
    pub(crate) fn owning(objects: Vec<Arc<K>>) -> Self {
        // SAFETY: the generation below holds a counted `Arc` of every object, and the
        // snapshot holds the generation for as long as its tree can be read.
        #[allow(unsafe_code)]
        let unowned = objects.iter().map(|o| unsafe { Unowned::new(o) }).collect();
        let generation = Generation::new();
        generation.retire(objects);
        // A snapshot is only iterated, never searched: no separators needed. Its tree
        // is freed with its generation (stamp 0: nothing ever writes it).
        let mut cx = Draft::new(0);
        let tree = PTree::from_sorted(unowned, |_| ptree::NO_SEP, &cx);
        cx.retire_tree(&tree);
        generation.retire_nodes(cx.finish());
        Self::new(tree, generation)
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
            generation: Arc::clone(&self.generation),
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
    inner: ptree::Iter<'a, Unowned<K>, ptree::Uncounted<Unowned<K>>>,
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = &'a Arc<K>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|o| &**o)
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
