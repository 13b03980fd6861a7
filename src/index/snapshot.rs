//! [`Snapshot`]: an immutable view of a whole store.

use crate::index::group::Group;
use crate::index::ptree::{self, Draft, PTree, StateTree, Uncounted};
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
    objects: Objects<K>,
    /// Keeps the trees' nodes and objects alive (see [`retire`](crate::index::retire)).
    generation: Arc<Generation<K>>,
}

/// Where a snapshot's objects are: one list of them all, or the groups of a prefix
/// index whose concatenation is that list (a store whose first key component is every
/// object's namespace keeps no list of its own).
enum Objects<K> {
    List(StateTree<Unowned<K>>),
    Groups {
        groups: StateTree<Group<K>>,
        len: usize,
    },
}

impl<K> Clone for Objects<K> {
    fn clone(&self) -> Self {
        match self {
            Objects::List(t) => Objects::List(t.clone()),
            Objects::Groups { groups, len } => Objects::Groups {
                groups: groups.clone(),
                len: *len,
            },
        }
    }
}

impl<K> Snapshot<K> {
    pub(crate) fn new(tree: StateTree<Unowned<K>>, generation: Arc<Generation<K>>) -> Self {
        Self {
            objects: Objects::List(tree),
            generation,
        }
    }

    /// A snapshot of the `len` objects of `groups`, taken one group after another: the
    /// caller knows that this is (namespace, name, uid) order.
    pub(crate) fn of_groups(
        groups: StateTree<Group<K>>,
        len: usize,
        generation: Arc<Generation<K>>,
    ) -> Self {
        Self {
            objects: Objects::Groups { groups, len },
            generation,
        }
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
        match &self.objects {
            Objects::List(t) => t.len(),
            Objects::Groups { len, .. } => *len,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects in (namespace, name, uid) order.
    pub fn iter(&self) -> Iter<'_, K> {
        match &self.objects {
            Objects::List(t) => Iter {
                groups: None,
                members: t.iter(),
                remaining: t.len(),
            },
            Objects::Groups { groups, len } => Iter {
                groups: Some(groups.iter()),
                members: ptree::Iter::default(),
                remaining: *len,
            },
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
            objects: self.objects.clone(),
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
    /// The groups still to come, when the snapshot is made of groups.
    groups: Option<ptree::Iter<'a, Group<K>, Uncounted<Group<K>>>>,
    /// The objects still to come of the list, or of the current group.
    members: ptree::Iter<'a, Unowned<K>, Uncounted<Unowned<K>>>,
    remaining: usize,
}

impl<'a, K> Iterator for Iter<'a, K> {
    type Item = &'a Arc<K>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(o) = self.members.next() {
                self.remaining -= 1;
                return Some(&**o);
            }
            self.members = self.groups.as_mut()?.next()?.members.iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
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
