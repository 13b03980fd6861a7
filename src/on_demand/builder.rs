//! [`CachedStoreBuilder`]: the on-demand tier's settings, checked before anything is built.

use super::cached::{KeyState, OnDemand};
use super::entry::Entry;
use super::reference::{Keep, Reference};
use super::stats::Stats;
use std::fmt;
use std::time::Duration;

use kube::Resource;
use serde::de::DeserializeOwned;

use crate::error::{ErrorKind, StoreError};
use crate::feed::indexer::Indexer;
use crate::index::secondary::LabelIndex;
use crate::on_demand::fetch::{ApiFetcher, Fetch, FetchSettings, Stripper};
use crate::on_demand::singleflight::Flights;
use crate::on_demand::store::CachedStore;
use crate::sync::{self, Arc, Cache};

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) ttl: Duration,
    pub(super) max_entries: usize,
    pub(super) max_bytes: Option<u64>,
    pub(super) namespace: Option<String>,
    /// What references keep of the metadata, for the indexes (see [`Keep`]).
    pub(super) keep: Keep,
}

/// How long an on-demand store keeps a fetched body unless told otherwise (the
/// builder's `ttl`, the configuration's `cache_ttl`): 5 minutes.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// How many bodies an on-demand store caches unless told otherwise (`max_entries`,
/// `max_cache_entries`): 10,000.
pub const DEFAULT_MAX_CACHE_ENTRIES: usize = 10_000;

/// Builds a [`CachedStore`](crate::CachedStore). Every setting has a default except the client.
#[must_use]
pub struct CachedStoreBuilder<K: Resource> {
    num_keys: usize,
    dyntype: K::DynamicType,
    client: Option<kube::Client>,
    settings: Settings,
    fetch: FetchSettings,
    shards: Option<usize>,
    strip: Option<Stripper<K>>,
    indexes: Vec<(String, Indexer)>,
    label_index: Option<LabelIndex>,
}

impl<K: Resource> fmt::Debug for CachedStoreBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStoreBuilder")
            .field("num_keys", &self.num_keys)
            .field("client", &self.client.is_some())
            .field("settings", &self.settings)
            .field("fetch", &self.fetch)
            .finish_non_exhaustive()
    }
}

impl<K> CachedStoreBuilder<K>
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + Send + Sync + 'static,
{
    /// The API client to fetch with. Required (unless built with
    /// [`build_with_fetcher`](Self::build_with_fetcher)).
    pub fn client(mut self, client: kube::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Restricts the store to one namespace: objects of others are refused.
    /// Defaults to: all namespaces.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.settings.namespace = Some(namespace.into());
        self
    }

    /// How long a cached body may be served without a watch event confirming it.
    /// Must be above zero. Defaults to: 5 minutes.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// The most bodies kept at once. Must be above zero. Defaults to: 10,000.
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.settings.max_entries = max_entries;
        self
    }

    /// A budget in response bytes instead of entries: when set, the cache keeps bodies
    /// up to this many bytes (weighing each by its size on the wire), and
    /// `max_entries` only sizes its tables. Must be above zero. Defaults to: none.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.settings.max_bytes = Some(max_bytes);
        self
    }

    /// The most API requests in flight at once, across all callers. Must be above
    /// zero and at most tokio's `Semaphore::MAX_PERMITS` (`usize::MAX >> 3`, far past
    /// any useful value; above it is an [`ErrorKind::InvalidSetting`], never a panic).
    /// Defaults to: 16.
    pub fn fetch_concurrency(mut self, n: usize) -> Self {
        self.fetch.concurrency = n;
        self
    }

    /// How long one API request may take. Must be above zero. Defaults to: 10 seconds.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch.timeout = timeout;
        self
    }

    /// How many times a `429 Too Many Requests` is retried (after its `Retry-After`,
    /// capped at 10 seconds). Defaults to: 3.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.fetch.max_retries = retries;
        self
    }

    /// Removes fields from fetched objects before they are cached
    /// (`metadata.managedFields` always is). Defaults to: nothing more.
    pub fn strip(mut self, strip: Stripper<K>) -> Self {
        self.strip = Some(strip);
        self
    }

    /// The index's shard count: a power of two from 2 to [`MAX_SHARDS`](crate::MAX_SHARDS),
    /// kept for compatibility. It is validated and reported by
    /// [`CachedStore::shards`](crate::CachedStore::shards), and has no effect: the
    /// index's exact-key table is one lock-free table (see
    /// [`MemoryStoreBuilder::shards`](crate::MemoryStoreBuilder::shards)).
    /// Defaults to: 1024, or four per core where that is more.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Adds the secondary index `name` over `indexer`'s paths, as
    /// [`MemoryStoreBuilder::index`](crate::MemoryStoreBuilder::index) does: queried
    /// with [`CachedReader::references_by`](crate::CachedReader::references_by) (no
    /// fetch) or [`CachedReader::get_by`](crate::CachedReader::get_by) (bodies through
    /// the cache). The store is fed by a metadata-only watch, so the paths must be
    /// fields its references can keep: `metadata.namespace`, `metadata.name`,
    /// `metadata.uid`, `metadata.labels[..]`, `metadata.annotations[..]` and
    /// `metadata.ownerReferences..`; its references then keep those labels,
    /// annotations or owner references (and only then).
    ///
    /// Defaults to: no secondary index.
    pub fn index(mut self, name: impl Into<String>, indexer: Indexer) -> Self {
        self.indexes.push((name.into(), indexer));
        self
    }

    /// Indexes the labels `which` covers for
    /// [`CachedReader::select`](crate::CachedReader::select), as
    /// [`MemoryStoreBuilder::label_index`](crate::MemoryStoreBuilder::label_index)
    /// does; the references then keep the objects' labels.
    ///
    /// Defaults to: no label index (selectors read every reference, whose labels are
    /// then not kept: a selector matches only references with no label it requires).
    pub fn label_index(mut self, which: LabelIndex) -> Self {
        self.label_index = Some(which);
        self
    }

    /// What references must keep of the metadata for the indexes.
    fn keep(&self) -> Keep {
        let paths = || self.indexes.iter().flat_map(|(_, i)| i.paths());
        Keep {
            labels: self.label_index.is_some() || paths().any(|p| p.starts_with("metadata.labels")),
            annotations: paths().any(|p| p.starts_with("metadata.annotations")),
            owners: paths().any(|p| p.starts_with("metadata.ownerReferences")),
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        // The index's shape first: nothing (not even the fetcher) is built before it.
        crate::index::memory::check_shape(self.num_keys, self.shards)?;
        let invalid = |msg: &str| Err(StoreError::build(ErrorKind::InvalidSetting(msg.into())));
        if self.settings.ttl.is_zero() {
            return invalid("ttl must be above zero (it bounds staleness when events are missed)");
        }
        if self.settings.max_entries == 0 {
            return invalid("max_entries must be above zero");
        }
        if self.settings.max_bytes == Some(0) {
            return invalid("max_bytes must be above zero (or unset)");
        }
        if self.fetch.concurrency == 0 {
            return invalid("fetch_concurrency must be above zero");
        }
        if self.fetch.concurrency > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(StoreError::build(ErrorKind::InvalidSetting(format!(
                "fetch_concurrency = {}: must be at most {} (tokio's semaphore limit); a few \
                 dozen requests in flight is plenty for one API server",
                self.fetch.concurrency,
                tokio::sync::Semaphore::MAX_PERMITS
            ))));
        }
        if self.fetch.timeout.is_zero() {
            return invalid("fetch_timeout must be above zero");
        }
        if self.settings.namespace.as_deref() == Some("") {
            return invalid("namespace must not be empty (leave it unset for all namespaces)");
        }
        for (name, indexer) in &self.indexes {
            if let Some(path) = indexer.paths().find(|p| !kept_path(p)) {
                return Err(StoreError::build(ErrorKind::InvalidSetting(format!(
                    "index {name:?}: {path:?} is not a field an on-demand store keeps: it is \
                     fed by a metadata-only watch and keeps references, which hold \
                     metadata.namespace, .name, .uid, .labels, .annotations and \
                     .ownerReferences only; index by those, or use a full store \
                     (MemoryStore) for fields outside them"
                ))));
            }
        }
        Ok(())
    }

    /// Builds the store over the configured client.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSetting`] naming the missing or invalid setting, or
    /// [`ErrorKind::ZeroKeys`].
    pub fn build(self) -> Result<CachedStore<K>, StoreError> {
        self.check()?;
        let Some(client) = self.client.clone() else {
            return Err(StoreError::build(ErrorKind::InvalidSetting(
                "client is required: call .client(kube::Client)".into(),
            )));
        };
        let fetcher = ApiFetcher::new(
            client,
            self.dyntype.clone(),
            self.fetch.clone(),
            self.strip.clone(),
        );
        self.build_with_fetcher(fetcher)
    }

    /// Builds the store over another [`Fetch`] implementation (for model checking and
    /// fuzzing, where no network can run). The client, if any, is ignored.
    ///
    /// # Errors
    /// As [`build`](Self::build), except that no client is required.
    pub fn build_with_fetcher<F: Fetch<K>>(
        self,
        fetcher: F,
    ) -> Result<CachedStore<K, F>, StoreError> {
        self.check()?;
        let mut index = crate::index::memory::MemoryStoreBuilder::<Reference>::new(self.num_keys);
        if let Some(shards) = self.shards {
            index = index.shards(shards);
        }
        let keep = self.keep();
        for (name, indexer) in self.indexes {
            index = index.index(name, indexer);
        }
        if let Some(which) = self.label_index {
            index = index.label_index(which);
        }
        let index = index.build_index()?;
        let (items, capacity) = match self.settings.max_bytes {
            Some(bytes) => (self.settings.max_entries, bytes),
            None => (self.settings.max_entries, self.settings.max_entries as u64),
        };
        let stats = Arc::new(Stats::default());
        let on_evict = {
            let stats = Arc::clone(&stats);
            std::sync::Arc::new(move |e: &Entry<K>| {
                stats.evictions.incr();
                stats.bytes.sub(u64::from(e.bytes));
                e.release();
            })
        };
        Ok(CachedStore::from_core(OnDemand {
            index,
            cache: Cache::new(items, capacity, on_evict),
            flights: Flights::new(sync::default_shard_count()),
            fetcher,
            hasher: KeyState::default(),
            settings: Settings {
                keep,
                ..self.settings
            },
            fetch_concurrency: self.fetch.concurrency,
            stats,
        }))
    }
}

impl<K> CachedStore<K>
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + Default + Send + Sync + 'static,
{
    /// A builder for a store of `num_keys` key components, for a typed resource.
    pub fn builder(num_keys: usize) -> CachedStoreBuilder<K> {
        Self::builder_for(num_keys, K::DynamicType::default())
    }
}

impl<K> CachedStore<K>
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + Send + Sync + 'static,
{
    /// A builder for a resource known at run time (`DynamicObject` with its
    /// `ApiResource`).
    pub fn builder_for(num_keys: usize, dyntype: K::DynamicType) -> CachedStoreBuilder<K> {
        CachedStoreBuilder {
            num_keys,
            dyntype,
            client: None,
            settings: Settings {
                ttl: DEFAULT_CACHE_TTL,
                max_entries: DEFAULT_MAX_CACHE_ENTRIES,
                max_bytes: None,
                namespace: None,
                keep: Keep::default(),
            },
            fetch: FetchSettings {
                concurrency: 16,
                timeout: Duration::from_secs(10),
                max_retries: 3,
                max_retry_after: Duration::from_secs(10),
            },
            shards: None,
            strip: None,
            indexes: Vec::new(),
            label_index: None,
        }
    }
}

/// Whether a reference keeps the field at `path` (see [`CachedStoreBuilder::index`]).
pub(crate) fn kept_path(path: &str) -> bool {
    matches!(
        path,
        "metadata.namespace" | "metadata.name" | "metadata.uid" | "metadata.resourceVersion"
    ) || [
        "metadata.labels",
        "metadata.annotations",
        "metadata.ownerReferences",
    ]
    .iter()
    .any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
    })
}
