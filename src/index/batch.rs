//! [`Batch`]: many writes applied as one.

use crate::feed::keys::Keys;
use crate::sync::Arc;

#[cfg(doc)]
use crate::MemoryStore;

/// Upserts and removals that [`MemoryStore::apply`] applies as one write: one
/// preparation of the new state and one publication, so that readers see all of the
/// batch or none of it.
///
/// Changes apply in the order they were added, exactly as the same calls one by one
/// would (an object upserted twice ends as the second version; an object upserted and
/// then removed is gone). A batch is validated as a whole before anything is applied:
/// one change with a wrong key count, or an object with identity fields of the wrong
/// type, refuses the whole batch.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use k8s_store::{Batch, MemoryStore};
///
/// let cm = |name: &str| {
///     let mut cm = ConfigMap::default();
///     cm.metadata.namespace = Some("default".into());
///     cm.metadata.name = Some(name.into());
///     Arc::new(cm)
/// };
/// let store = MemoryStore::<ConfigMap>::new(2)?;
/// store.add(cm("old"), &["default", "old"])?;
///
/// let mut batch = Batch::new();
/// batch.upsert(cm("a"), &["default", "a"]);
/// batch.upsert(cm("b"), &["default", "b"]);
/// batch.remove(cm("old"));
/// let applied = store.apply(batch)?;
/// assert_eq!((applied.upserted, applied.removed), (2, 1));
/// assert_eq!(store.len(), 2);
/// # Ok::<(), k8s_store::StoreError>(())
/// ```
#[must_use]
pub struct Batch<K> {
    pub(crate) changes: Vec<Change<K>>,
}

pub(crate) enum Change<K> {
    Upsert(Arc<K>, Keys),
    Remove(Arc<K>),
}

impl<K> Default for Batch<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> std::fmt::Debug for Batch<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the objects: they may be Secrets.
        f.debug_struct("Batch")
            .field("len", &self.changes.len())
            .finish_non_exhaustive()
    }
}

impl<K> Batch<K> {
    /// The objects of every change, upserted and removed, in order.
    pub(crate) fn objects(&self) -> impl Iterator<Item = &Arc<K>> {
        self.changes.iter().map(|c| match c {
            Change::Upsert(obj, _) | Change::Remove(obj) => obj,
        })
    }

    /// An empty batch.
    pub fn new() -> Self {
        Self {
            changes: Vec::new(),
        }
    }

    /// An empty batch with room for `n` changes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            changes: Vec::with_capacity(n),
        }
    }

    /// Adds an upsert of `obj` under `keys` (as [`MemoryStore::update`]).
    pub fn upsert<S: AsRef<str>>(&mut self, obj: Arc<K>, keys: &[S]) -> &mut Self {
        self.changes
            .push(Change::Upsert(obj, keys.iter().collect()));
        self
    }

    /// Adds an upsert of `obj` under `keys`, given as owned strings.
    pub fn upsert_owned(&mut self, obj: Arc<K>, keys: Vec<String>) -> &mut Self {
        self.changes.push(Change::Upsert(obj, keys.into()));
        self
    }

    /// Adds an upsert of `obj` under `keys` as an [`Indexer`](crate::Indexer) extracts
    /// them ([`Indexer::key_list`](crate::Indexer::key_list)), taken as they are.
    pub fn upsert_keys(&mut self, obj: Arc<K>, keys: Keys) -> &mut Self {
        self.changes.push(Change::Upsert(obj, keys));
        self
    }

    /// Adds a removal of the object with `obj`'s identity (as [`MemoryStore::remove`]);
    /// one that is not stored is no change.
    pub fn remove(&mut self, obj: Arc<K>) -> &mut Self {
        self.changes.push(Change::Remove(obj));
        self
    }

    /// How many changes the batch holds.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// What [`MemoryStore::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Applied {
    /// Upserts applied (every upsert of the batch).
    pub upserted: usize,
    /// Removals of objects that were stored (a removal of an absent object is not
    /// counted).
    pub removed: usize,
}
