//! [`Store`]: the interface both tiers implement.

use std::future::Future;

use crate::error::StoreError;
use crate::index::snapshot::Snapshot;
use crate::index::store::MemoryStore;
use crate::objects::Objects;
use crate::sync::Arc;

/// The operations a watch feeds and a controller reads, shared by the full in-memory
/// tier ([`MemoryStore`]) and the on-demand tier.
///
/// Writes are synchronous (the on-demand tier only records references). Reads return
/// futures because the on-demand tier may fetch from the API server; `MemoryStore`'s
/// are `std::future::Ready`: no allocation, no boxing, ready on the first poll. Code
/// that knows it holds a `MemoryStore` can call its synchronous inherent methods.
///
/// The trait uses generic methods and `impl Future` returns, so it is not object safe;
/// to choose a tier at run time, wrap the stores in an enum.
pub trait Store<K>: Send + Sync {
    /// How many key components each object is stored under.
    fn num_keys(&self) -> usize;

    /// Upserts `obj` under `keys` (moving it if its keys changed).
    ///
    /// # Errors
    /// A [`StoreError`] for a wrong number of keys; nothing changes.
    fn add<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError>;

    /// Same as [`add`](Self::add).
    ///
    /// # Errors
    /// A [`StoreError`] for a wrong number of keys; nothing changes.
    fn update<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError>;

    /// Removes the object with `obj`'s identity; returns whether it was present.
    ///
    /// # Errors
    /// Tier-specific; `MemoryStore` never fails here.
    fn remove(&self, obj: &K) -> Result<bool, StoreError>;

    /// Removes every object under exactly `keys`; returns how many.
    ///
    /// # Errors
    /// A [`StoreError`] for a wrong number of keys.
    fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError>;

    /// Replaces the whole content at once (a relist).
    ///
    /// # Errors
    /// A [`StoreError`] for an item with a wrong number of keys; nothing changes.
    fn replace<S: AsRef<str>>(&self, items: Vec<(Arc<K>, Vec<S>)>) -> Result<(), StoreError>;

    /// The objects under `keys`, or under every key starting with `keys`, sorted by
    /// (namespace, name, uid).
    fn get<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Objects<K>, StoreError>> + Send;

    /// The one object under exactly `keys` (all `num_keys` components), or `None`;
    /// several objects under the key is [`ErrorKind::NotUnique`](crate::ErrorKind).
    ///
    /// # Errors
    /// A [`StoreError`] for a wrong number of keys, a shared key, or (on-demand tier) a
    /// failed fetch.
    fn get_one<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Option<Arc<K>>, StoreError>> + Send;

    /// Every object, in (namespace, name, uid) order.
    fn list(&self) -> impl Future<Output = Result<Snapshot<K>, StoreError>> + Send;

    /// The number of objects.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes everything.
    fn clear(&self);
}

impl<K: Send + Sync + 'static> Store<K> for MemoryStore<K> {
    fn num_keys(&self) -> usize {
        MemoryStore::num_keys(self)
    }

    fn add<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError> {
        MemoryStore::add(self, obj, keys)
    }

    fn update<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError> {
        MemoryStore::update(self, obj, keys)
    }

    fn remove(&self, obj: &K) -> Result<bool, StoreError> {
        MemoryStore::remove(self, obj)
    }

    fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError> {
        MemoryStore::delete(self, keys)
    }

    fn replace<S: AsRef<str>>(&self, items: Vec<(Arc<K>, Vec<S>)>) -> Result<(), StoreError> {
        MemoryStore::replace(self, items)
    }

    fn get<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Objects<K>, StoreError>> + Send {
        std::future::ready(MemoryStore::get(self, keys))
    }

    fn get_one<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Option<Arc<K>>, StoreError>> + Send {
        std::future::ready(MemoryStore::get_one(self, keys))
    }

    fn list(&self) -> impl Future<Output = Result<Snapshot<K>, StoreError>> + Send {
        std::future::ready(Ok(MemoryStore::list(self)))
    }

    fn len(&self) -> usize {
        MemoryStore::len(self)
    }

    fn clear(&self) {
        MemoryStore::clear(self)
    }
}

impl<K, F> Store<K> for crate::on_demand::store::CachedStore<K, F>
where
    K: kube::Resource + serde::Serialize + Send + Sync + 'static,
    F: crate::on_demand::fetch::Fetch<K>,
{
    fn num_keys(&self) -> usize {
        crate::on_demand::store::CachedStore::num_keys(self)
    }

    /// Records `obj`'s reference only: its body is dropped (fetched again when read).
    fn add<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError> {
        crate::on_demand::store::CachedStore::add(self, &*obj, keys)
    }

    fn update<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError> {
        crate::on_demand::store::CachedStore::update(self, &*obj, keys)
    }

    fn remove(&self, obj: &K) -> Result<bool, StoreError> {
        crate::on_demand::store::CachedStore::remove(self, obj)
    }

    fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError> {
        crate::on_demand::store::CachedStore::delete(self, keys)
    }

    fn replace<S: AsRef<str>>(&self, items: Vec<(Arc<K>, Vec<S>)>) -> Result<(), StoreError> {
        crate::on_demand::store::CachedStore::replace(
            self,
            items
                .into_iter()
                .map(|(obj, keys)| (crate::on_demand::cached::Reference::of(&*obj), keys)),
        )
    }

    fn get<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Objects<K>, StoreError>> + Send {
        crate::on_demand::store::CachedStore::get(self, keys)
    }

    fn get_one<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Option<Arc<K>>, StoreError>> + Send {
        crate::on_demand::store::CachedStore::get_one(self, keys)
    }

    fn list(&self) -> impl Future<Output = Result<Snapshot<K>, StoreError>> + Send {
        crate::on_demand::store::CachedStore::list(self)
    }

    fn len(&self) -> usize {
        crate::on_demand::store::CachedStore::len(self)
    }

    fn clear(&self) {
        crate::on_demand::store::CachedStore::clear(self)
    }
}
