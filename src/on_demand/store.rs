//! The on-demand tier's handles: [`CachedStore`], the writer, and [`CachedReader`], its
//! cloneable read-only handles (which still fetch and cache bodies: a read of a miss
//! is not a write to the index). Both share one [`OnDemand`]; see
//! [`memory_store`](crate::MemoryStore) for why the store is the writer.

use std::future::Future;
use std::time::Duration;

use kube::Resource;

use crate::error::StoreError;
use crate::feed::keys::Components;
use crate::freshness::{FreshnessStats, WaitError};
use crate::index::memory::SelectStats;
use crate::index::snapshot::Snapshot;
use crate::object::Object;
use crate::on_demand::cached::{CacheStats, OnDemand, Reference};
use crate::on_demand::fetch::{ApiFetcher, Fetch};
use crate::readiness::WriterDropped;
use crate::selector::Selector;
use crate::sync::Arc;

#[cfg(doc)]
use crate::{CachedStoreBuilder, ErrorKind, MemoryStore, Operation};

/// The reads, the same on the writer and its readers (both hold the shared part as
/// `self.core`).
macro_rules! reads {
    () => {
        /// How many key components each reference is stored under.
        pub fn num_keys(&self) -> usize {
            self.core.num_keys()
        }

        /// The shard count the store was built with (see [`CachedStoreBuilder::shards`]):
        /// reported for compatibility; the index of references has no shards.
        pub fn shards(&self) -> usize {
            self.core.shards()
        }

        /// The number of references.
        pub fn len(&self) -> usize {
            self.core.len()
        }

        /// Whether there are none.
        pub fn is_empty(&self) -> bool {
            self.core.is_empty()
        }

        /// The references under `keys` (or under every key starting with `keys`), without
        /// fetching anything.
        ///
        /// # Errors
        /// As [`MemoryStore::get`].
        pub fn references<S: AsRef<str>>(
            &self,
            keys: &[S],
        ) -> Result<Vec<Arc<Reference>>, StoreError> {
            self.core.references(keys)
        }

        /// Every reference, in (namespace, name, uid) order, without fetching anything.
        pub fn list_references(&self) -> Snapshot<Reference> {
            self.core.list_references()
        }

        /// The references under `keys` in the secondary index `index` (see
        /// [`CachedStoreBuilder::index`]), exactly or by prefix as
        /// [`MemoryStore::get_by`] finds objects, without fetching anything.
        ///
        /// # Errors
        /// As [`MemoryStore::get_by`].
        pub fn references_by<S: AsRef<str>>(
            &self,
            index: &str,
            keys: &[S],
        ) -> Result<Vec<Arc<Reference>>, StoreError> {
            self.core.references_by(index, keys)
        }

        /// The objects under `keys` in the secondary index `index`: the references
        /// [`references_by`](Self::references_by) finds, their bodies read as
        /// [`get`](Self::get) reads them (cached, the misses fetched concurrently).
        ///
        /// # Errors
        /// As [`MemoryStore::get_by`]; a failed fetch ([`Operation::Fetch`]).
        ///
        /// # Cancel safety
        /// Cancel safe: a dropped call leaves no fetch without a waiter (see the type's docs).
        pub fn get_by<S: AsRef<str>>(
            &self,
            index: &str,
            keys: &[S],
        ) -> impl Future<Output = Result<Vec<Arc<K>>, StoreError>> {
            self.core.get_by(index, keys)
        }

        /// The references whose labels match `selector`, as [`MemoryStore::select`]
        /// finds objects (from the label index, see [`CachedStoreBuilder::label_index`],
        /// when it covers the key of one of the selector's `=` or `in` terms), without
        /// fetching anything. Without a label index references keep no labels, so only
        /// selectors that an object without labels matches select anything.
        pub fn select_references(&self, selector: &Selector) -> Vec<Arc<Reference>> {
            self.core.select_references(None, selector)
        }

        /// [`select_references`](Self::select_references) in namespace `namespace` only.
        pub fn select_references_in(
            &self,
            namespace: &str,
            selector: &Selector,
        ) -> Vec<Arc<Reference>> {
            self.core.select_references(Some(namespace), selector)
        }

        /// The objects whose labels match `selector`: the references
        /// [`select_references`](Self::select_references) finds, their bodies read as
        /// [`get`](Self::get) reads them.
        ///
        /// # Errors
        /// A failed fetch ([`Operation::Fetch`]).
        ///
        /// # Cancel safety
        /// Cancel safe: a dropped call leaves no fetch without a waiter (see the type's docs).
        pub async fn select(&self, selector: &Selector) -> Result<Vec<Arc<K>>, StoreError> {
            self.core.select(None, selector).await
        }

        /// [`select`](Self::select) in namespace `namespace` only.
        ///
        /// # Errors
        /// As [`select`](Self::select).
        ///
        /// # Cancel safety
        /// As [`select`](Self::select).
        pub async fn select_in(
            &self,
            namespace: &str,
            selector: &Selector,
        ) -> Result<Vec<Arc<K>>, StoreError> {
            self.core.select(Some(namespace), selector).await
        }

        /// How selector queries were answered (see [`MemoryStore::select_stats`]).
        pub fn select_stats(&self) -> SelectStats {
            self.core.select_stats()
        }

        /// The names of the secondary indexes, in the order they were configured.
        pub fn index_names(&self) -> impl Iterator<Item = &str> {
            self.core.index().index_names()
        }

        /// The objects under `keys` (or under every key starting with `keys`), in
        /// (namespace, name, uid) order: cached bodies, and the misses fetched
        /// concurrently. Objects the API server no longer has are left out.
        ///
        /// # Errors
        /// A wrong number of keys ([`Operation::Get`]); a failed fetch
        /// ([`Operation::Fetch`], [`ErrorKind::Fetch`] naming the object and the cause).
        ///
        /// # Cancel safety
        /// Cancel safe: dropping the future cancels this caller's fetches, and other
        /// callers waiting for them take them over (see the type's docs).
        pub fn get<S: AsRef<str>>(
            &self,
            keys: &[S],
        ) -> impl Future<Output = Result<crate::Objects<K>, StoreError>> {
            self.core.get(keys)
        }

        /// The one object under exactly `keys` (all `num_keys` components), through the
        /// cache and the singleflight like [`get`](Self::get), returning the object alone.
        /// `None` if no reference is under the key or the API server no longer has the
        /// object.
        ///
        /// # Errors
        /// A wrong number of keys ([`ErrorKind::KeyCount`]); several references under the
        /// key ([`ErrorKind::NotUnique`]); a failed fetch ([`Operation::Fetch`]).
        ///
        /// # Cancel safety
        /// As [`get`](Self::get).
        pub fn get_one<S: AsRef<str>>(
            &self,
            keys: &[S],
        ) -> impl Future<Output = Result<Option<Arc<K>>, StoreError>> {
            self.core.get_one(keys)
        }

        /// One object by namespace and name, through the cache and the singleflight,
        /// whether or not the index has a reference to it. `Ok(None)` if the API server
        /// says it does not exist.
        ///
        /// # Errors
        /// A failed fetch ([`Operation::Fetch`]).
        ///
        /// # Cancel safety
        /// Cancel safe: a dropped call leaves no fetch without a waiter (see the type's docs).
        pub fn fetch(
            &self,
            namespace: &str,
            name: &str,
        ) -> impl Future<Output = Result<Option<Arc<K>>, StoreError>> {
            self.core.fetch(namespace, name)
        }

        /// Every object, fetched as needed (concurrently, bounded), in (namespace, name,
        /// uid) order. This reads every body: on a large store it is as expensive as the
        /// fetches it makes.
        ///
        /// # Errors
        /// A failed fetch ([`Operation::Fetch`]).
        ///
        /// # Cancel safety
        /// Cancel safe: a dropped call leaves no fetch without a waiter (see the type's docs).
        pub fn list(&self) -> impl Future<Output = Result<Snapshot<K>, StoreError>> {
            self.core.list()
        }

        /// The counters since the store was built.
        pub fn stats(&self) -> CacheStats {
            self.core.stats()
        }

        /// Waits until the store has applied every write up to resourceVersion `version`,
        /// as [`MemoryReader::wait_for_version`](crate::MemoryReader::wait_for_version)
        /// does: afterwards, reads reference (and fetch) that write's objects or newer,
        /// never a body cached before it.
        ///
        /// # Errors
        /// [`WaitError::Timeout`], [`WaitError::WriterDropped`],
        /// [`WaitError::InvalidVersion`].
        ///
        /// # Cancel safety
        /// Cancel safe.
        pub async fn wait_for_version(
            &self,
            version: &str,
            timeout: Duration,
        ) -> Result<(), WaitError> {
            self.core.index().wait_for_version(version, timeout).await
        }

        /// Waits until the reference of `written` (the object the API server returned
        /// from the controller's write) is at its resourceVersion or newer, or gone from
        /// a store that has applied its version, as
        /// [`MemoryReader::wait_for_object`](crate::MemoryReader::wait_for_object) does.
        ///
        /// # Errors
        /// As [`wait_for_version`](Self::wait_for_version).
        ///
        /// # Cancel safety
        /// Cancel safe.
        pub async fn wait_for_object<M>(
            &self,
            written: &impl Object<M>,
            timeout: Duration,
        ) -> Result<(), WaitError> {
            let view = crate::object::MetaView {
                namespace: written.namespace(),
                name: written.name(),
                uid: written.uid(),
            };
            self.core
                .index()
                .wait_for_object(view, written.resource_version(), timeout)
                .await
        }

        /// How fresh the store is (see [`FreshnessStats`]).
        pub fn freshness(&self) -> FreshnessStats {
            self.core.index().freshness.stats()
        }
    };
}

/// The on-demand tier: the index keeps [`Reference`]s only; bodies are fetched from
/// the API server when read and kept in a bounded cache. This is the store's
/// **writer**; [`reader`](Self::reader) hands out cheap [`CachedReader`]s that read
/// (and fetch) but cannot write, as [`MemoryStore`] does for the full tier.
///
/// # Reads
/// [`get`](Self::get) resolves the references under `keys` exactly as
/// [`MemoryStore::get`] does (same index code), serves cached bodies, and fetches the
/// misses concurrently (at most `fetch_concurrency` requests at once, across all
/// callers), returning bodies in (namespace, name, uid) order.
///
/// A hit takes one probe: a reference whose body is cached points at it (a *hint*, see
/// [`Reference`]), so the body is read from the reference found in the index, with no
/// second lookup in the cache. The cache still owns every body and its bound: a hint
/// is set when a fetched body of the reference's version is cached, and cleared when
/// the cache drops that entry for any reason. Hits served through hints are reported
/// to the cache's eviction policy at most once per 50 ms per body, which keeps its
/// picture of what is read (its hit ratio is measured against an LRU's in
/// `benches/cached.rs`). Bodies cached without a reference (by [`fetch`](Self::fetch))
/// and references whose hint was lost to a race take the two-probe path.
///
/// # Guarantees
/// - **Bounded:** at most `max_entries` bodies are resident (or `max_bytes` of
///   response bytes, when set). Memory does not grow with the cluster beyond the
///   references.
/// - **Singleflight:** N concurrent misses of one object make one `GET`; its value or
///   its error reaches all N. A caller whose future is dropped hands the fetch over to
///   a waiter; nobody is left waiting.
/// - **No stale resurrection:** a watch event (`update`, `remove`, `delete`) for an
///   object invalidates its entry and any fetch in flight for it; that fetch's body is
///   returned to the callers already waiting for it but never cached. A cached body
///   whose resourceVersion differs from the reference's is not served.
/// - **Staleness:** a body is at most `ttl` old when events were missed; otherwise it
///   is as fresh as the watch.
/// - **Errors are returned, never swallowed:** a fetch that fails (5xx, 429 after its
///   retries, timeout, transport) fails the `get` with [`Operation::Fetch`]. An object
///   the API server no longer has (404) is left out of the result (its delete event
///   will follow).
/// - `Debug` output and this crate's logs never contain object bodies (Secrets).
#[must_use]
pub struct CachedStore<K: Resource + Send + Sync + 'static, F: Fetch<K> = ApiFetcher<K>> {
    core: Arc<OnDemand<K, F>>,
}

impl<K: Resource + Send + Sync + 'static, F: Fetch<K>> std::fmt::Debug for CachedStore<K, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.core, f)
    }
}

impl<K: Resource + Send + Sync + 'static, F: Fetch<K>> Drop for CachedStore<K, F> {
    fn drop(&mut self) {
        let was_ready = self.core.readiness().is_ready();
        self.core.index().freshness.stop(was_ready);
        self.core.readiness().writer_dropped();
    }
}

impl<K: Resource + Send + Sync + 'static, F: Fetch<K>> CachedStore<K, F> {
    reads!();

    pub(crate) fn from_core(core: OnDemand<K, F>) -> Self {
        Self {
            core: Arc::new(core),
        }
    }

    /// A read-only handle to this store: cheap to clone, for as many readers as there
    /// are. Its reads fetch and cache bodies exactly as this store's do, through the
    /// same cache and singleflight.
    pub fn reader(&self) -> CachedReader<K, F> {
        CachedReader {
            core: Arc::clone(&self.core),
        }
    }

    /// Marks the store ready: every reader's [`ready`](CachedReader::ready) resolves.
    /// A watch feed calls it once its first complete list is applied; call it yourself
    /// when you fill a store by hand. No effect if it already is.
    pub fn mark_ready(&self) {
        self.core.readiness().set_ready();
    }

    /// Records `obj`'s reference under `keys` (an upsert by identity, moving it if its
    /// keys changed) and invalidates its cached body. Takes anything with metadata: a
    /// full object (its body is not kept) or a `PartialObjectMeta`.
    ///
    /// # Errors
    /// A wrong number of keys, or an object outside the store's namespace; nothing
    /// changes.
    pub fn add<M>(&self, obj: &impl Object<M>, keys: &[impl AsRef<str>]) -> Result<(), StoreError> {
        self.core.add(obj, keys)
    }

    /// Same as [`add`](Self::add).
    ///
    /// # Errors
    /// As [`add`](Self::add).
    pub fn update<M>(
        &self,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<(), StoreError> {
        self.core.update(obj, keys)
    }

    /// Removes the reference with `obj`'s identity and its cached body; returns whether
    /// it was present.
    ///
    /// # Errors
    /// None today; the `Result` matches [`MemoryStore::remove`].
    pub fn remove<M>(&self, obj: &impl Object<M>) -> Result<bool, StoreError> {
        self.core.remove(obj)
    }

    /// Removes every reference under exactly `keys` and their cached bodies; returns
    /// how many.
    ///
    /// # Errors
    /// A wrong number of keys.
    pub fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError> {
        self.core.delete(keys)
    }

    /// Replaces every reference at once (a relist). Cached bodies of objects that are
    /// gone, or whose resourceVersion changed, are invalidated, and so are bodies
    /// cached under a name that had no reference before (as [`add`](Self::add) does):
    /// one that [`fetch`](Self::fetch) read directly is not served after the relist.
    ///
    /// # Errors
    /// An item with a wrong number of keys or outside the namespace; nothing changes.
    pub fn replace<M, O, S>(
        &self,
        items: impl IntoIterator<Item = (O, Vec<S>)>,
    ) -> Result<(), StoreError>
    where
        O: Object<M>,
        S: AsRef<str>,
    {
        self.replace_with(items)
    }

    /// [`replace`](Self::replace), with the keys however the caller holds them (a watch's
    /// [`Keys`](crate::Keys)).
    pub(crate) fn replace_with<M, O, C>(
        &self,
        items: impl IntoIterator<Item = (O, C)>,
    ) -> Result<(), StoreError>
    where
        O: Object<M>,
        C: Components,
    {
        self.core.replace(items)
    }

    /// Whether every secondary index can read its keys from `obj`'s reference (see
    /// `watch::Target::check`).
    pub(crate) fn check_indexes<M>(&self, obj: &impl Object<M>) -> Result<(), StoreError> {
        let index = self.core.index();
        if !index.has_indexes() {
            // Nothing to read: no reference is built for nothing on every event.
            return Ok(());
        }
        index.check_indexes(&self.reference_of(obj))
    }

    /// `obj`'s reference as this store keeps it (with the metadata its indexes read):
    /// what a watch's relist hands over instead of whole objects.
    pub(crate) fn reference_of<M>(&self, obj: &impl Object<M>) -> Reference {
        self.core.reference_of(obj)
    }

    /// Removes every reference and every cached body.
    pub fn clear(&self) {
        self.core.clear()
    }

    /// The fetcher (for its own statistics, if it keeps any).
    pub fn fetcher(&self) -> &F {
        self.core.fetcher()
    }

    /// Checks internal invariants: the index's, and that no fetch is registered when
    /// none is running. For tests, property tests and fuzz targets; call it when no
    /// operation is in progress. Built only for this crate's own tests, fuzz targets and
    /// loom models (`cfg(test)`, `cfg(fuzzing)`, `cfg(k8s_store_loom)`, or the
    /// `validate` feature): it is not part of the stable API.
    ///
    /// # Errors
    /// A description of the first violated invariant.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub fn validate(&self) -> Result<(), String> {
        self.core.validate()
    }
}

/// A read-only handle to a [`CachedStore`]: what reconcilers hold.
///
/// Cheap to clone (one reference count). Its reads are the store's (see
/// [`CachedStore`]): they resolve references, serve cached bodies and fetch misses
/// through the shared cache and singleflight, with the same guarantees. It cannot change
/// the index. After the writer is dropped it keeps answering from the last references
/// (fetching bodies as before), and [`ready`](Self::ready) returns [`WriterDropped`].
pub struct CachedReader<K: Resource + Send + Sync + 'static, F: Fetch<K> = ApiFetcher<K>> {
    core: Arc<OnDemand<K, F>>,
}

impl<K: Resource + Send + Sync + 'static, F: Fetch<K>> Clone for CachedReader<K, F> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<K: Resource + Send + Sync + 'static, F: Fetch<K>> std::fmt::Debug for CachedReader<K, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedReader")
            .field("store", &*self.core)
            .field("readiness", self.core.readiness())
            .finish()
    }
}

impl<K: Resource + Send + Sync + 'static, F: Fetch<K>> CachedReader<K, F> {
    reads!();

    /// Resolves once the store's references have been filled by a complete list.
    ///
    /// # Errors
    /// [`WriterDropped`] once the writer is gone (before or after the store was ready).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn ready(&self) -> Result<(), WriterDropped> {
        self.core.readiness().wait().await
    }

    /// Whether the store has been filled by a complete list and its writer is alive.
    pub fn is_ready(&self) -> bool {
        self.core.readiness().is_ready()
    }
}
