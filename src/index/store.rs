//! The full tier's handles: [`MemoryStore`], the writer, and [`MemoryReader`], its
//! cloneable read-only handles. Both share one [`Index`].
//!
//! Why the store is the writer and readers come from it (rather than a `(reader,
//! writer)` pair): every existing use of a `MemoryStore` (tests, benches, hand-fed
//! stores) keeps working unchanged, the writer keeps the reads it needs to decide what
//! to write (a feed compares resourceVersions), and a reader exists only once a store
//! does, so there is no store without a writer to be ready.

use std::time::Duration;

use crate::error::StoreError;
use crate::feed::keys::Components;
use crate::freshness::{FreshnessStats, Versions, WaitError};
use crate::index::batch::{Applied, Batch};
use crate::index::memory::{Index, MemoryStoreBuilder, SelectStats};
use crate::index::snapshot::Snapshot;
use crate::object::Object;
use crate::objects::Objects;
use crate::readiness::WriterDropped;
use crate::selector::Selector;
use crate::sync::Arc;

#[cfg(doc)]
use crate::MAX_KEYS;
#[cfg(doc)]
use crate::error::ErrorKind;

/// The reads, the same on the writer and its readers (both hold the shared part as
/// `self.index`).
macro_rules! reads {
    () => {
        /// How many key components each object is stored under.
        pub fn num_keys(&self) -> usize {
            self.index.num_keys()
        }

        /// The shard count the store was built with (see
        /// [`MemoryStoreBuilder::shards`]): reported for compatibility; the exact-key
        /// index is one lock-free table and has no shards.
        pub fn shards(&self) -> usize {
            self.index.shards()
        }

        /// The objects under `keys` (all `num_keys` components), or under every key that
        /// starts with `keys` (fewer components), sorted by (namespace, name, uid). No match
        /// is empty. [`Objects`] derefs to a slice and holds one object without
        /// allocating, so an exact `get` of a key with one object costs what
        /// [`get_one`](Self::get_one) does.
        ///
        /// # Errors
        /// [`ErrorKind::PrefixLength`] for zero components or more than `num_keys`.
        pub fn get<S: AsRef<str>>(&self, keys: &[S]) -> Result<Objects<K>, StoreError> {
            self.index.get(keys)
        }

        /// The one object under exactly `keys` (all `num_keys` components), or `None`.
        ///
        /// For keys that identify a single object, such as `[namespace, name]`: the same
        /// lookup as an exact [`get`](Self::get), with `None` and
        /// [`ErrorKind::NotUnique`] in place of a result of zero or several.
        ///
        /// # Errors
        /// [`ErrorKind::KeyCount`] unless `keys.len() == num_keys`; [`ErrorKind::NotUnique`]
        /// when several objects share the key (use `get` for those).
        ///
        /// ```
        /// # use std::sync::Arc;
        /// # use k8s_openapi::api::core::v1::ConfigMap;
        /// # use k8s_store::MemoryStore;
        /// let store = MemoryStore::<ConfigMap>::new(2)?;
        /// let mut cm = ConfigMap::default();
        /// cm.metadata.namespace = Some("default".into());
        /// cm.metadata.name = Some("a".into());
        /// store.add(Arc::new(cm), &["default", "a"])?;
        /// assert!(store.get_one(&["default", "a"])?.is_some());
        /// assert!(store.get_one(&["default", "b"])?.is_none());
        /// # Ok::<(), k8s_store::StoreError>(())
        /// ```
        pub fn get_one<S: AsRef<str>>(&self, keys: &[S]) -> Result<Option<Arc<K>>, StoreError> {
            self.index.get_one(keys)
        }

        /// The objects under `keys` in the secondary index `index` (see
        /// [`MemoryStoreBuilder::index`]): with one component per path of the index,
        /// those with exactly that key; with fewer, every object with a key that starts
        /// with them. Sorted by (namespace, name, uid), each object once however many of
        /// its keys match. No match is an empty vector.
        ///
        /// Read from the published state with no lock, as a prefix [`get`](Self::get)
        /// is, and as consistent with it: a write shows in every index at once.
        ///
        /// # Errors
        /// [`ErrorKind::UnknownIndex`] (listing the store's indexes) for a name that is
        /// not one; [`ErrorKind::PrefixLength`] for zero components or more than the
        /// index has.
        pub fn get_by<S: AsRef<str>>(
            &self,
            index: &str,
            keys: &[S],
        ) -> Result<Vec<Arc<K>>, StoreError> {
            self.index.get_by(index, keys)
        }

        /// The objects whose labels match `selector`, sorted by (namespace, name, uid).
        ///
        /// With a label index (see [`MemoryStoreBuilder::label_index`]) that covers the
        /// key of one of its `=` or `in` terms, the query reads only the objects under
        /// the cheapest such term (an `in` term: under all its values) and checks the
        /// rest of the selector on them: its cost is that list and the result, not the
        /// store. Any other selector (only `!=`, `notin`, `key` or `!key` terms, keys
        /// the index does not cover, the empty selector, or no label index) reads every
        /// object; [`select_stats`](Self::select_stats) counts both kinds.
        ///
        /// Read from one published state with no lock, as [`list`](Self::list) is.
        ///
        /// ```
        /// # use std::sync::Arc;
        /// # use k8s_openapi::api::core::v1::Pod;
        /// use k8s_store::{LabelIndex, MemoryStore, Selector};
        ///
        /// let store = MemoryStore::<Pod>::builder(2).label_index(LabelIndex::All).build()?;
        /// # for (name, app, tier) in [("a", "web", "api"), ("b", "web", "db"), ("c", "shop", "api")] {
        /// #     let mut p = Pod::default();
        /// #     p.metadata.namespace = Some("ns".into());
        /// #     p.metadata.name = Some(name.into());
        /// #     p.metadata.labels = Some([("app".to_string(), app.to_string()), ("tier".to_string(), tier.to_string())].into());
        /// #     store.add(Arc::new(p), &["ns", name])?;
        /// # }
        /// let web_api = store.select(&"app=web,tier in (api,cache)".parse::<Selector>()?);
        /// assert_eq!(web_api.len(), 1);
        /// assert_eq!(store.select_stats().indexed, 1);
        /// # Ok::<(), k8s_store::StoreError>(())
        /// ```
        pub fn select(&self, selector: &Selector) -> Vec<Arc<K>> {
            self.index.select(None, selector)
        }

        /// [`select`](Self::select) among the objects of namespace `namespace` only:
        /// with the label index, the namespace's objects under the cheapest term, found
        /// by one descent of each list.
        pub fn select_in(&self, namespace: &str, selector: &Selector) -> Vec<Arc<K>> {
            self.index.select(Some(namespace), selector)
        }

        /// How many selector queries were answered from the label index, and how many
        /// read every object, since the store was built.
        pub fn select_stats(&self) -> SelectStats {
            self.index.select_stats()
        }

        /// The names of the secondary indexes, in the order they were configured.
        pub fn index_names(&self) -> impl Iterator<Item = &str> {
            self.index.index_names()
        }

        /// An immutable snapshot of every object in (namespace, name, uid) order.
        ///
        /// O(1): the published state is shared, never copied or rebuilt, and later writes do
        /// not change it. Holding a snapshot keeps the objects it references alive, and
        /// also every object replaced or removed while it is held, until it is dropped
        /// (see [`Snapshot`]).
        pub fn list(&self) -> Snapshot<K> {
            self.index.list()
        }

        /// The number of objects.
        pub fn len(&self) -> usize {
            self.index.len()
        }

        /// Whether the store holds no object.
        pub fn is_empty(&self) -> bool {
            self.index.is_empty()
        }

        /// Waits until the store has applied every write up to resourceVersion `version`
        /// (the version the API server returned for the controller's write), for at
        /// most `timeout`: afterwards, reads show that write or a newer state. Resolves
        /// at once if the store has applied it already; a zero timeout answers at once.
        /// Must run on a tokio runtime with its timer (as kube's client does).
        ///
        /// Versions compare as integers; a non-numeric version resolves only while the
        /// newest version applied is exactly it (see [`freshness`](crate::freshness)).
        ///
        /// # Errors
        /// [`WaitError::Timeout`]; [`WaitError::WriterDropped`] at once when the writer
        /// (the watch) is gone; [`WaitError::InvalidVersion`] for a version no write
        /// returns (`""`, `"0"`, whitespace, ...).
        ///
        /// # Cancel safety
        /// Cancel safe.
        pub async fn wait_for_version(
            &self,
            version: &str,
            timeout: Duration,
        ) -> Result<(), WaitError> {
            self.index.wait_for_version(version, timeout).await
        }

        /// Waits until `written` (the object as the API server returned it from the
        /// controller's write) is in the store at its resourceVersion or a newer one, or
        /// is gone from a store that has applied its version (deleted since), for at
        /// most `timeout`. The object is found by (namespace, name, uid): a recreated
        /// object is another one. A zero timeout answers at once.
        ///
        /// # Errors
        /// As [`wait_for_version`](Self::wait_for_version); an object without a
        /// resourceVersion is [`WaitError::InvalidVersion`].
        ///
        /// # Cancel safety
        /// Cancel safe.
        pub async fn wait_for_object(
            &self,
            written: &K,
            timeout: Duration,
        ) -> Result<(), WaitError> {
            let view = self.index.view_of(written);
            let rv = self.index.version_of(written);
            self.index.wait_for_object(view, rv, timeout).await
        }

        /// How fresh the store is: the newest version applied, the newest one waited for,
        /// the distance between them and the time since the last write.
        pub fn freshness(&self) -> FreshnessStats {
            self.index.freshness.stats()
        }

        /// Checks every internal invariant and describes the first one broken: the trees
        /// are valid, every object is under exactly one key of the exact-key table, in the
        /// identity table and in one group per prefix depth, and the published state
        /// matches the table.
        ///
        /// For tests, property tests and fuzz targets; it takes the writer lock and
        /// reads every structure, so it is slow. Built only for this crate's own tests,
        /// fuzz targets and loom models (`cfg(test)`, `cfg(fuzzing)`,
        /// `cfg(k8s_store_loom)`, or the `validate` feature): it is not part of the
        /// stable API.
        #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
        pub fn validate(&self) -> Result<(), String> {
            self.index.validate()
        }
    };
}

/// A composite-key index that keeps whole objects in memory: the store's **writer**.
///
/// `MemoryStore` is the one handle that writes (the [`Store`](crate::Store) trait's full
/// interface, as a watch feed needs it); [`reader`](Self::reader) hands out cheap
/// [`MemoryReader`]s that can only read, for reconcilers and renders. It is not `Clone`:
/// give it to the side that feeds the store (a [`watch::Feeder`](crate::feed::watch::Feeder) or
/// the [`watch::reflect`](crate::feed::watch::reflect) adapter) and keep readers everywhere
/// else, as kube-runtime's reflector does with its `Writer` and `Store`. Dropping the
/// writer leaves the readers answering from the last state, and their
/// [`ready`](MemoryReader::ready) says so ([`WriterDropped`]).
//////
/// Each object is stored under exactly one composite key of `num_keys` components;
/// many objects may share a key. See the [crate documentation](crate) for the full
/// contract; in short:
///
/// - [`add`](Self::add) and [`update`](Self::update) are upserts by identity (UID when
///   set, else namespace and name). An object whose keys changed moves: nothing stays
///   behind under the old key.
/// - [`get`](Self::get) with all `num_keys` components returns the objects under exactly
///   that key; with fewer, every object whose leading components equal them (compared
///   component by component). Results are sorted by (namespace, name, uid).
/// - [`delete`](Self::delete) removes a whole key's objects; [`remove`](Self::remove)
///   one object, leaving its siblings.
/// - [`list`](Self::list) returns an immutable [`Snapshot`] in O(1).
///
/// # Concurrency
///
/// All methods take `&self` and may be called from any thread. Writes are serialised
/// by a writer mutex (a watch has one writer, so it is uncontended) and are
/// **linearizable**: once a write has returned, every later read on any thread sees it,
/// and every snapshot is the state after some prefix of the writes.
///
/// - No read takes a lock. Exact gets, prefix gets and `list` read the published
///   state through `ArcSwap`; an exact get probes that state's exact-key table and
///   answers for that state, even while the writer is storing the next one's entries.
///   Prefix gets copy results outside any guard.
/// - A write builds the new state aside and publishes it in one step, so no reader can
///   see it in one place and miss it in another. The writer never waits for a reader.
#[must_use]
pub struct MemoryStore<K: Send + Sync + 'static> {
    index: Arc<Index<K>>,
}

impl<K: Send + Sync + 'static> std::fmt::Debug for MemoryStore<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.index, f)
    }
}

impl<K: Send + Sync + 'static> Drop for MemoryStore<K> {
    fn drop(&mut self) {
        self.index.freshness.stop(self.index.readiness.is_ready());
        self.index.readiness.writer_dropped();
    }
}

impl<K: Send + Sync + 'static> MemoryStore<K> {
    reads!();

    /// Whether every secondary index can read its keys from `obj` (what a feed checks
    /// before it writes; see `watch::Target::check`).
    pub(crate) fn check_indexes(&self, obj: &K) -> Result<(), StoreError> {
        self.index.check_indexes(obj)
    }

    pub(crate) fn from_index(index: Index<K>) -> Self {
        Self {
            index: Arc::new(index),
        }
    }

    /// A store indexing objects by `num_keys` key components.
    ///
    /// # Errors
    /// [`ErrorKind::ZeroKeys`] when `num_keys` is 0, [`ErrorKind::TooManyKeys`] when it
    /// is above [`MAX_KEYS`].
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use k8s_openapi::api::core::v1::ConfigMap;
    /// use k8s_store::MemoryStore;
    ///
    /// let store = MemoryStore::<ConfigMap>::new(2)?;
    /// let mut cm = ConfigMap::default();
    /// cm.metadata.namespace = Some("default".into());
    /// cm.metadata.name = Some("a".into());
    /// store.add(Arc::new(cm), &["default", "a"])?;
    /// assert_eq!(store.get(&["default"])?.len(), 1);
    /// # Ok::<(), k8s_store::StoreError>(())
    /// ```
    pub fn new<M>(num_keys: usize) -> Result<Self, StoreError>
    where
        K: Object<M>,
    {
        Self::builder(num_keys).build()
    }

    /// A builder for a store with `num_keys` key components and tuning options.
    pub fn builder(num_keys: usize) -> MemoryStoreBuilder<K> {
        MemoryStoreBuilder::new(num_keys)
    }

    /// A read-only handle to this store: cheap to clone, `Send + Sync`, for as many
    /// readers as there are. It answers what this store answers, at the same cost.
    pub fn reader(&self) -> MemoryReader<K> {
        MemoryReader {
            index: Arc::clone(&self.index),
        }
    }

    /// Marks the store ready: every reader's [`ready`](MemoryReader::ready) resolves.
    /// A watch feed calls it once its first complete list is applied; call it yourself
    /// when you fill a store by hand. No effect if it already is.
    pub fn mark_ready(&self) {
        self.index.readiness.set_ready();
    }

    /// `f` applied to the one object under exactly `keys` while the published state is
    /// held (an `ArcSwap` guard, no lock); `None` unless `keys` has `num_keys`
    /// components and holds exactly one object (no object, or several: ask
    /// [`get`](Self::get)). For the watch feed's resourceVersion check, which so builds
    /// no `Vec` and takes no reference count. `f` must not call back into this store.
    pub(crate) fn with_exact_one<S: AsRef<str>, R>(
        &self,
        keys: &[S],
        f: impl FnOnce(&K) -> R,
    ) -> Option<R> {
        self.index.with_exact_one(keys, |obj| f(obj))
    }

    /// Inserts `obj` under `keys`, or replaces the object of the same identity
    /// (moving it if its keys changed).
    ///
    /// # Errors
    /// [`ErrorKind::KeyCount`] unless `keys.len() == num_keys`;
    /// [`ErrorKind::InvalidMetadata`] for identity fields of the wrong type (see
    /// [`Object::check_metadata`]). Nothing is changed.
    pub fn add<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError> {
        let versions = self.versions_of(std::slice::from_ref(&obj));
        self.index.add(obj, keys)?;
        self.index.applied(versions);
        Ok(())
    }

    /// The same as [`add`](Self::add): both are upserts by identity.
    ///
    /// # Errors
    /// As [`add`](Self::add); nothing is changed.
    pub fn update<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError> {
        let versions = self.versions_of(std::slice::from_ref(&obj));
        self.index.update(obj, keys)?;
        self.index.applied(versions);
        Ok(())
    }

    /// [`update`](Self::update), unless `same` says the object stored for `keys` is
    /// unchanged: the feeder's skip of an `Apply` whose resourceVersion is already
    /// stored, answered from the write's own lookup. `same(stored)` is `None` for an
    /// object of another identity, else whether `stored` is unchanged; it is asked of
    /// the only object under exactly `keys`, or else the first one of `obj`'s identity.
    /// Returns whether it wrote.
    pub(crate) fn update_changed<S: AsRef<str>>(
        &self,
        obj: Arc<K>,
        keys: &[S],
        same: &crate::index::memory::Same<'_, K>,
    ) -> Result<bool, StoreError> {
        let versions = self.versions_of(std::slice::from_ref(&obj));
        let wrote = self.index.update_changed(obj, keys, same)?;
        if wrote {
            self.index.applied(versions);
        }
        Ok(wrote)
    }

    /// Removes every object under exactly `keys` and returns how many there were.
    ///
    /// # Errors
    /// [`ErrorKind::KeyCount`] unless `keys.len() == num_keys`.
    pub fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError> {
        let n = self.index.delete(keys)?;
        // No version: what it removed carried old ones. Object waiters look again.
        self.index.applied(Versions::default());
        Ok(n)
    }

    /// Removes the one object with `obj`'s identity (its siblings under the same key
    /// stay). Returns whether it was present. This is what a watch delete event uses.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidMetadata`] for identity fields of the wrong type (no such
    /// object can be stored); nothing is changed.
    pub fn remove(&self, obj: &K) -> Result<bool, StoreError> {
        let removed = self.index.remove(obj)?;
        // A watch's delete event carries the version of the deletion.
        let mut versions = Versions::default();
        versions.add(self.index.version_of(obj));
        self.index.applied(versions);
        Ok(removed)
    }

    /// Removes every object at once.
    pub fn clear(&self) {
        self.index.clear();
        self.index.applied(Versions::default());
    }

    /// Applies every change of `batch` as one write: the new state is prepared once and
    /// published once, so readers see all of the batch or none of it (the batch is
    /// linearizable as a unit, as a single write is). Changes apply in order, as the
    /// same calls one by one would. A burst of watch events (a rollout, a namespace
    /// deletion, a reconnect's replay) costs one publication instead of one per event,
    /// and each tree node a batch changes is copied once, however many of its changes
    /// fall in it.
    ///
    /// Readers never wait for a batch: until it is published they read the state
    /// before it, exact gets included.
    ///
    /// # Errors
    /// [`ErrorKind::KeyCount`] for an upsert with the wrong number of keys and
    /// [`ErrorKind::InvalidMetadata`] for an object with identity fields of the wrong
    /// type, with [`Operation::Apply`](crate::Operation::Apply) naming the first such
    /// change; nothing of the batch is then applied.
    pub fn apply(&self, batch: Batch<K>) -> Result<Applied, StoreError> {
        let versions = self.versions_of(batch.objects());
        let applied = self.index.apply(batch)?;
        self.index.applied(versions);
        Ok(applied)
    }

    /// Replaces the whole content with `items` in one step, as a watch relist does:
    /// the new state is built aside while readers keep seeing the old one, then
    /// swapped in atomically. Objects absent from `items` are gone afterwards; for
    /// identities listed twice the last one wins.
    ///
    /// # Errors
    /// [`ErrorKind::KeyCount`] for the first item with the wrong number of keys,
    /// [`ErrorKind::InvalidMetadata`] for the first with identity fields of the wrong
    /// type; the store is then left unchanged.
    pub fn replace<I, S>(&self, items: I) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = (Arc<K>, Vec<S>)>,
        S: AsRef<str>,
    {
        self.replace_with(items)
    }

    /// [`replace`](Self::replace), with the keys however the caller holds them (a watch's
    /// [`Keys`](crate::Keys)).
    pub(crate) fn replace_with<I, C>(&self, items: I) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = (Arc<K>, C)>,
        C: Components,
    {
        let mut versions = Versions::default();
        let index = &self.index;
        self.index.replace(
            items
                .into_iter()
                .inspect(|(obj, _)| versions.add(index.version_of(obj))),
        )?;
        self.index.applied(versions);
        Ok(())
    }

    /// The versions of `objects` (gathered before the write takes them).
    fn versions_of<'a>(&self, objects: impl IntoIterator<Item = &'a Arc<K>>) -> Versions {
        let mut versions = Versions::default();
        for obj in objects {
            versions.add(self.index.version_of(obj));
        }
        versions
    }
}

/// A read-only handle to a [`MemoryStore`]: what reconcilers hold.
///
/// Cheap to clone (one reference count) and answers exactly as the store does, with the
/// same guarantees (see [`MemoryStore`]): reads are linearizable with the writer's
/// writes, `list` is O(1), and no read takes a lock (exact gets included). It cannot
/// write. After the writer is dropped it keeps answering from the last state published,
/// and [`ready`](Self::ready) returns [`WriterDropped`].
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use k8s_store::MemoryStore;
///
/// let store = MemoryStore::<ConfigMap>::new(2)?; // the writer
/// let reader = store.reader(); // Clone + Send + Sync, for every reconciler
/// let mut cm = ConfigMap::default();
/// cm.metadata.namespace = Some("default".into());
/// cm.metadata.name = Some("a".into());
/// store.add(Arc::new(cm), &["default", "a"])?;
/// assert_eq!(reader.get(&["default"])?.len(), 1); // sees the write at once
/// # Ok::<(), k8s_store::StoreError>(())
/// ```
///
/// A reader has no way to write:
/// ```compile_fail
/// # use k8s_openapi::api::core::v1::ConfigMap;
/// let store = k8s_store::MemoryStore::<ConfigMap>::new(1).unwrap();
/// store.reader().clear();
/// ```
pub struct MemoryReader<K: Send + Sync + 'static> {
    index: Arc<Index<K>>,
}

impl<K: Send + Sync + 'static> Clone for MemoryReader<K> {
    fn clone(&self) -> Self {
        Self {
            index: Arc::clone(&self.index),
        }
    }
}

impl<K: Send + Sync + 'static> std::fmt::Debug for MemoryReader<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReader")
            .field("store", &*self.index)
            .field("readiness", &self.index.readiness)
            .finish()
    }
}

impl<K: Send + Sync + 'static> MemoryReader<K> {
    reads!();

    /// Resolves once the store has been filled by a complete list (at once if it has).
    ///
    /// # Errors
    /// [`WriterDropped`] once the writer is gone (before or after the store was ready):
    /// the store will not change again.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn ready(&self) -> Result<(), WriterDropped> {
        self.index.readiness.wait().await
    }

    /// Whether the store has been filled by a complete list and its writer is alive.
    pub fn is_ready(&self) -> bool {
        self.index.readiness.is_ready()
    }
}
