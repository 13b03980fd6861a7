//! [`CachedStore`]: the on-demand tier. The index holds only [`Reference`]s; object
//! bodies are fetched from the API server when read, through a bounded cache with
//! per-entry expiry and singleflight fetches.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Duration;

use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::FetchError;
use crate::error::{ErrorKind, Operation, StoreError};
use crate::index::key::short_eq;
use crate::index::memory::Index;
use crate::index::ptree::{NO_SEP, PTree};
use crate::index::snapshot::Snapshot;
use crate::object::{Object, via};
use crate::on_demand::fetch::{self, ApiFetcher, Fetch, FetchSettings, Fetched, Stripper};
use crate::on_demand::singleflight::{Flights, Join, Outcome};
use crate::on_demand::store::CachedStore;
use crate::sync::{self, Arc, Cache, CacheValue, Counter, Slot, Stamp};

/// What the on-demand index keeps of an object: who it is and which version the watch
/// last reported. No body, no labels, no annotations.
///
/// Inside a [`CachedStore`] a reference may also point at its cached body (a *hint*),
/// so that a hit takes one probe (the index's) instead of two (index, then cache).
/// The cache stays the body's owner: the hint is set only while the cache holds the
/// body for this very reference, and cleared when the cache drops it (eviction,
/// expiry, invalidation, `clear`). Clones and comparisons ignore it.
pub struct Reference {
    namespace: Box<str>,
    name: Box<str>,
    uid: Box<str>,
    resource_version: Option<Box<str>>,
    /// The store's hash of (namespace, name), set when the store records it, so that
    /// cache lookups on the read path hash nothing.
    key_hash: u64,
    hint: Slot<Hint>,
}

/// How often (on the [`sync::now_nanos`] clock) a hit served through a hint is reported
/// to the cache's eviction policy, per body: 50 ms. The policy (quick_cache's, CLOCK-like)
/// asks whether an entry was read since its clock hand last passed it, and the hand
/// passes each entry once per `capacity / misses per second` (a second or more for any
/// cache that mostly hits), so one report per 50 ms loses nothing it uses; reporting
/// every hit would put the second probe the hint exists to avoid back on most hits of
/// a large, evenly read cache.
const REPORT_EVERY: u64 = 50_000_000;

/// A reference's pointer to its cached body (see [`Reference`]).
struct Hint {
    /// The body, of the store's `K` (a `Reference` is not generic over it).
    body: Arc<dyn Any + Send + Sync>,
    /// The cache entry's expiry, on the [`sync::now_nanos`] clock.
    expires: u64,
    /// The clock reading when a hit served from here was last reported to the cache,
    /// whose eviction policy must see the hits it no longer serves itself.
    reported: Stamp,
}

impl Clone for Reference {
    fn clone(&self) -> Self {
        Self {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            resource_version: self.resource_version.clone(),
            key_hash: self.key_hash,
            // A clone is no entry's owner: nothing would clear a hint on it.
            hint: Slot::empty(),
        }
    }
}

/// Equal when they name the same object at the same version. The cache-key hash is left
/// out: it is seeded at random per store, so the same reference read from two stores
/// (or built by [`Reference::new`], unhashed) would otherwise compare unequal; the hint
/// is left out too (it is a cache detail, not part of what a reference says).
impl PartialEq for Reference {
    fn eq(&self, other: &Self) -> bool {
        self.namespace == other.namespace
            && self.name == other.name
            && self.uid == other.uid
            && self.resource_version == other.resource_version
    }
}

impl Eq for Reference {}

impl Reference {
    /// The reference of anything with metadata: a full object, a
    /// `PartialObjectMeta` from a metadata watch, or a JSON object.
    pub fn of<M>(obj: &impl Object<M>) -> Self {
        Self {
            namespace: obj.namespace().into(),
            name: obj.name().into(),
            uid: obj.uid().into(),
            resource_version: obj.resource_version().map(Into::into),
            key_hash: 0,
            hint: Slot::empty(),
        }
    }

    /// A reference from its parts (empty `uid`: identity by namespace and name).
    pub fn new(namespace: &str, name: &str, uid: &str, resource_version: Option<&str>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            resource_version: resource_version.map(Into::into),
            key_hash: 0,
            hint: Slot::empty(),
        }
    }

    /// `metadata.namespace`, `""` for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.uid`, `""` when unknown.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// `metadata.resourceVersion` as the watch last reported it.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reference")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("resource_version", &self.resource_version)
            .finish()
    }
}

impl Object<via::Resource> for Reference {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn uid(&self) -> &str {
        &self.uid
    }
    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
    fn label(&self, _: &str) -> Option<&str> {
        None
    }
    fn annotation(&self, _: &str) -> Option<&str> {
        None
    }
    fn to_json(&self) -> Result<Cow<'_, Value>, serde_json::Error> {
        Ok(Cow::Owned(serde_json::json!({
            "metadata": {
                "namespace": &*self.namespace,
                "name": &*self.name,
                "uid": &*self.uid,
                "resourceVersion": self.resource_version.as_deref(),
            }
        })))
    }
}

/// The cache's key: namespace and name (what a `GET` needs), with the store's hash of
/// them, computed once. Both strings live in one allocation (`namespace` then `name`),
/// so comparing a key reads one cache line, not two.
#[derive(Clone, PartialEq, Eq)]
struct CacheKey {
    hash: u64,
    text: Box<str>,
    namespace_len: usize,
}

impl CacheKey {
    fn is(&self, namespace: &str, name: &str) -> bool {
        let text = self.text.as_bytes();
        self.namespace_len == namespace.len()
            && text.len() == namespace.len() + name.len()
            && short_eq(&text[namespace.len()..], name.as_bytes())
            && short_eq(&text[..namespace.len()], namespace.as_bytes())
    }
}

/// A borrowed [`CacheKey`] for allocation-free lookups; hashes identically.
#[derive(Clone, Copy)]
struct KeyRef<'a> {
    hash: u64,
    namespace: &'a str,
    name: &'a str,
}

fn hash_key<H: Hasher>(namespace: &str, name: &str, h: &mut H) {
    h.write(namespace.as_bytes());
    h.write_u8(0xff); // never part of UTF-8: namespace/name boundaries cannot shift
    h.write(name.as_bytes());
}

// Both hash the precomputed hash only: equal keys have equal precomputed hashes.
impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

impl quick_cache::Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        key.hash == self.hash && key.is(self.namespace, self.name)
    }
}

impl KeyRef<'_> {
    fn to_owned(self) -> CacheKey {
        let mut text = String::with_capacity(self.namespace.len() + self.name.len());
        text.push_str(self.namespace);
        text.push_str(self.name);
        CacheKey {
            hash: self.hash,
            text: text.into_boxed_str(),
            namespace_len: self.namespace.len(),
        }
    }
}

/// A cached body.
struct Entry<K> {
    object: Arc<K>,
    resource_version: Version,
    /// On the [`sync::now_nanos`] clock.
    expires: u64,
    /// The body's size on the wire (an API server caps objects far below 4 GiB).
    bytes: u32,
    /// Whether the entry weighs its bytes (a byte budget) or 1.
    weigh_bytes: bool,
    /// The reference whose hint points at this body, if any: whoever drops the entry
    /// from the cache clears that hint ([`Entry::release`]).
    owner: Option<Arc<Reference>>,
}

impl<K> Entry<K> {
    /// Clears the owner's hint: called for every entry the cache drops. Unconditional:
    /// a reference's hint is only set by a fill that has first removed any earlier
    /// entry of that key under the same cache shard lock, so the hint cleared here is
    /// this entry's (or, after a lost race with a concurrent expiry, a newer one, which
    /// only costs the next hit the cache's own probe).
    fn release(&self) {
        if let Some(owner) = &self.owner {
            owner.hint.set(None);
        }
    }
}

// By hand: a derive would ask for `K: Clone`.
impl<K> Clone for Entry<K> {
    fn clone(&self) -> Self {
        Self {
            object: Arc::clone(&self.object),
            resource_version: self.resource_version.clone(),
            expires: self.expires,
            bytes: self.bytes,
            weigh_bytes: self.weigh_bytes,
            owner: self.owner.clone(),
        }
    }
}

impl<K> CacheValue for Entry<K> {
    fn weight(&self) -> u64 {
        if self.weigh_bytes {
            u64::from(self.bytes.max(1))
        } else {
            1
        }
    }
}

/// A cached body's resourceVersion, held so that copying an entry out of the cache on
/// a hit copies 16 bytes instead of touching a shared reference count. Versions are
/// opaque strings; the API server's are decimal numbers, which fit inline up to 14
/// digits (a cluster would need 10^14 writes to go past that).
#[derive(Clone)]
enum Version {
    Absent,
    Inline {
        len: u8,
        bytes: [u8; Version::INLINE],
    },
    Heap(Arc<String>),
}

impl Version {
    const INLINE: usize = 14;

    fn of(rv: Option<&str>) -> Self {
        match rv {
            None => Version::Absent,
            Some(rv) if rv.len() <= Self::INLINE => {
                let mut bytes = [0; Self::INLINE];
                bytes[..rv.len()].copy_from_slice(rv.as_bytes());
                // `rv.len() <= INLINE` (the guard): the cast cannot truncate.
                Version::Inline {
                    len: rv.len() as u8,
                    bytes,
                }
            }
            Some(rv) => Version::Heap(Arc::new(rv.to_owned())),
        }
    }

    fn is(&self, rv: &str) -> bool {
        match self {
            Version::Absent => false,
            Version::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .is_some_and(|v| short_eq(v, rv.as_bytes())),
            Version::Heap(v) => v.as_str() == rv,
        }
    }
}

type FetchResult<K> = Result<Option<Fetched<K>>, FetchError>;

#[derive(Debug, Default)]
struct Stats {
    hits: Counter,
    misses: Counter,
    coalesced: Counter,
    fetches: Counter,
    fetch_errors: Counter,
    not_found: Counter,
    evictions: Counter,
    expirations: Counter,
    bytes: Counter,
    fetch_nanos: Counter,
    /// Fetches by duration: `fetch_latency[i]` counts those that took at most
    /// `FETCH_LATENCY_BUCKETS[i]` seconds and more than the bucket before (the last
    /// bucket is open-ended: those above every bound).
    fetch_latency: [Counter; FETCH_LATENCY_BUCKETS.len() + 1],
}

/// The upper bounds, in seconds, of the fetch-latency histogram in
/// [`CacheStats::fetch_latency`] (Prometheus's default buckets, from 1 ms).
pub const FETCH_LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Stats {
    fn record_fetch(&self, nanos: u64) {
        self.fetch_nanos.add(nanos);
        let secs = nanos as f64 / 1e9;
        let bucket = FETCH_LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(FETCH_LATENCY_BUCKETS.len());
        self.fetch_latency[bucket].incr();
    }
}

/// Counters of a [`CachedStore`], from [`CachedStore::stats`]. Each is a sum since the
/// store was built, except `entries` and `bytes`, which are current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Objects served from the cache.
    pub hits: u64,
    /// Objects not found in the cache (each led a fetch or waited for one).
    pub misses: u64,
    /// Misses that waited for another caller's fetch instead of making their own.
    pub coalesced: u64,
    /// Fetches made (one per object missed at once, however many callers missed it).
    pub fetches: u64,
    /// Fetches that failed (returned to every caller waiting on them).
    pub fetch_errors: u64,
    /// Fetches the API server answered `404 Not Found` (left out of results).
    pub not_found: u64,
    /// Entries evicted to stay within the capacity.
    pub evictions: u64,
    /// Entries found expired (older than the TTL) and dropped.
    pub expirations: u64,
    /// Entries resident now.
    pub entries: u64,
    /// Bytes (response sizes) of the entries resident now.
    pub bytes: u64,
    /// Total time spent in fetches.
    pub fetch_time: Duration,
    /// Fetches by duration: element `i` counts the fetches that took at most
    /// [`FETCH_LATENCY_BUCKETS`]`[i]` seconds and more than the bound before; the last
    /// element, those that took longer than every bound.
    pub fetch_latency: [u64; FETCH_LATENCY_BUCKETS.len() + 1],
}

impl CacheStats {
    /// Hits over hits plus misses (0 before any read).
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

#[derive(Debug, Clone)]
struct Settings {
    ttl: Duration,
    max_entries: usize,
    max_bytes: Option<u64>,
    namespace: Option<String>,
}

/// The on-demand tier's shared part: what a [`CachedStore`] (its writer) and its
/// [`CachedReader`](crate::CachedReader)s share. See [`CachedStore`] for the contract.
pub(crate) struct OnDemand<K: Resource, F> {
    index: Index<Reference>,
    cache: Cache<CacheKey, Entry<K>>,
    flights: Flights<CacheKey, FetchResult<K>>,
    fetcher: F,
    hasher: KeyState,
    settings: Settings,
    fetch_concurrency: usize,
    stats: Arc<Stats>,
}

#[cfg(not(any(k8s_store_loom, fuzzing)))]
type KeyState = foldhash::fast::RandomState;
#[cfg(any(k8s_store_loom, fuzzing))]
type KeyState = foldhash::fast::FixedState;

impl<K: Resource, F> fmt::Debug for OnDemand<K, F> {
    // Never prints bodies (Secrets): only sizes and counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("references", &self.index.len())
            .field("settings", &self.settings)
            .field("stats", &stats_of(&self.stats, self.cache.len()))
            .finish_non_exhaustive()
    }
}

/// Builds a [`CachedStore`]. Every setting has a default except the client.
#[must_use]
pub struct CachedStoreBuilder<K: Resource> {
    num_keys: usize,
    dyntype: K::DynamicType,
    client: Option<kube::Client>,
    settings: Settings,
    fetch: FetchSettings,
    shards: Option<usize>,
    strip: Option<Stripper<K>>,
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

    /// The index's shard count: a power of two from 2 to [`MAX_SHARDS`](crate::MAX_SHARDS)
    /// (see [`MemoryStoreBuilder::shards`](crate::MemoryStoreBuilder::shards)).
    /// Defaults to: 1024, or four per core where that is more.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
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
            settings: self.settings,
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
                ttl: Duration::from_secs(300),
                max_entries: 10_000,
                max_bytes: None,
                namespace: None,
            },
            fetch: FetchSettings {
                concurrency: 16,
                timeout: Duration::from_secs(10),
                max_retries: 3,
                max_retry_after: Duration::from_secs(10),
            },
            shards: None,
            strip: None,
        }
    }
}

impl<K, F> OnDemand<K, F>
where
    K: Resource + Send + Sync + 'static,
    F: Fetch<K>,
{
    /// The store's readiness (its index's).
    pub(crate) fn readiness(&self) -> &crate::readiness::Readiness {
        &self.index.readiness
    }

    fn key_hash(&self, namespace: &str, name: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        hash_key(namespace, name, &mut h);
        h.finish()
    }

    fn key<'a>(&self, namespace: &'a str, name: &'a str) -> KeyRef<'a> {
        KeyRef {
            hash: self.key_hash(namespace, name),
            namespace,
            name,
        }
    }

    fn key_of(r: &Reference) -> KeyRef<'_> {
        KeyRef {
            hash: r.key_hash,
            namespace: &r.namespace,
            name: &r.name,
        }
    }

    /// See [`CachedStore::num_keys`].
    pub(crate) fn num_keys(&self) -> usize {
        self.index.num_keys()
    }

    /// See [`CachedStore::shards`].
    pub(crate) fn shards(&self) -> usize {
        self.index.shards()
    }

    fn reference<M>(
        &self,
        op: Operation,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<Reference, StoreError> {
        let mut r = Reference::of(obj);
        r.key_hash = self.key_hash(&r.namespace, &r.name);
        if let Some(scope) = &self.settings.namespace
            && *r.namespace != **scope
        {
            return Err(StoreError::new(
                op,
                keys,
                ErrorKind::OutOfScope {
                    object: format!("{}/{}", r.namespace, r.name),
                    scope: scope.clone(),
                },
            ));
        }
        Ok(r)
    }

    /// Drops the cached body of (namespace, name) and detaches any fetch in flight for
    /// it, so that its result is not cached.
    fn invalidate(&self, key: KeyRef<'_>) {
        self.flights.invalidate(
            key.hash,
            |k| k.is(key.namespace, key.name),
            || {
                if let Some(old) = self.cache.remove(&key) {
                    self.dropped(&old);
                }
            },
        );
    }

    /// See [`CachedStore::add`].
    pub(crate) fn add<M>(
        &self,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<(), StoreError> {
        self.put(Operation::Add, obj, keys)
    }

    /// See [`CachedStore::update`].
    pub(crate) fn update<M>(
        &self,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<(), StoreError> {
        self.put(Operation::Update, obj, keys)
    }

    fn put<M>(
        &self,
        op: Operation,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<(), StoreError> {
        let r = Arc::new(self.reference(op, obj, keys)?);
        match op {
            Operation::Update => self.index.update(Arc::clone(&r), keys)?,
            _ => self.index.add(Arc::clone(&r), keys)?,
        }
        self.invalidate(Self::key_of(&r));
        Ok(())
    }

    /// See [`CachedStore::remove`].
    pub(crate) fn remove<M>(&self, obj: &impl Object<M>) -> Result<bool, StoreError> {
        let r = Reference::of(obj);
        let removed = self.index.remove(&r)?;
        self.invalidate(self.key(&r.namespace, &r.name));
        Ok(removed)
    }

    /// See [`CachedStore::delete`].
    pub(crate) fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError> {
        if keys.len() != self.index.num_keys() {
            return Err(StoreError::new(
                Operation::Delete,
                keys,
                ErrorKind::KeyCount {
                    expected: self.index.num_keys(),
                    given: keys.len(),
                },
            ));
        }
        let refs = self.index.get(keys)?;
        let n = self.index.delete(keys)?;
        for r in refs {
            self.invalidate(Self::key_of(&r));
        }
        Ok(n)
    }

    /// See [`CachedStore::replace`].
    pub(crate) fn replace<M, O, S>(
        &self,
        items: impl IntoIterator<Item = (O, Vec<S>)>,
    ) -> Result<(), StoreError>
    where
        O: Object<M>,
        S: AsRef<str>,
    {
        let before = self.index.list();
        let old_refs: std::collections::HashMap<(&str, &str), &Arc<Reference>> = before
            .iter()
            .map(|old| ((&*old.namespace, &*old.name), old))
            .collect();
        let mut refs = Vec::new();
        for (obj, keys) in items {
            let r = self.reference(Operation::Replace, &obj, &keys)?;
            // An unchanged reference is kept as it is, with its hint: its cached body
            // stays valid (and stays this reference's), so hits stay one probe.
            let r = match old_refs.get(&(&*r.namespace, &*r.name)) {
                Some(old) if ***old == r => Arc::clone(old),
                _ => Arc::new(r),
            };
            refs.push((r, keys));
        }
        let current: std::collections::HashMap<(&str, &str), Option<&str>> = refs
            .iter()
            .map(|(r, _)| ((&*r.namespace, &*r.name), r.resource_version()))
            .collect();
        let mut stale: Vec<Arc<Reference>> = before
            .iter()
            .filter(|old| {
                current.get(&(&*old.namespace, &*old.name)) != Some(&old.resource_version())
            })
            .cloned()
            .collect();
        stale.extend(
            refs.iter()
                .filter(|(r, _)| !old_refs.contains_key(&(&*r.namespace, &*r.name)))
                .map(|(r, _)| Arc::clone(r)),
        );
        drop((current, old_refs));
        self.index.replace(refs)?;
        for r in stale {
            self.invalidate(Self::key_of(&r));
        }
        Ok(())
    }

    /// See [`CachedStore::clear`].
    pub(crate) fn clear(&self) {
        self.index.clear();
        // Fetches in flight read the server before the clear: keep their bodies out.
        self.flights.invalidate_all();
        self.cache.drain(|old| self.dropped(&old));
    }

    /// See [`CachedStore::len`].
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// See [`CachedStore::is_empty`].
    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// See [`CachedStore::references`].
    pub(crate) fn references<S: AsRef<str>>(
        &self,
        keys: &[S],
    ) -> Result<Vec<Arc<Reference>>, StoreError> {
        self.index.get(keys)
    }

    /// See [`CachedStore::list_references`].
    pub(crate) fn list_references(&self) -> Snapshot<Reference> {
        self.index.list()
    }

    /// The hit path of `get` and `get_one`: the cached body of the one reference under
    /// exactly `keys`, at that reference's version, probed under the index shard's read
    /// lock (no reference count taken on the index). Counts the hit.
    #[inline]
    fn exact_hit<S: AsRef<str>>(&self, keys: &[S]) -> Option<Arc<K>> {
        let obj = self.index.with_exact_one(keys, |r| {
            self.hinted(r)
                .or_else(|| self.peek(Self::key_of(r), r.resource_version()))
        })??;
        self.stats.hits.incr();
        Some(obj)
    }

    /// The body `r`'s hint points at, if it has one that has not expired: a hit with no
    /// cache probe. At most once per [`REPORT_EVERY`] per body, the hit is also reported
    /// to the cache (a `get` whose value is dropped), so that its eviction policy still
    /// sees which bodies are read; the hint itself is at `r`'s version by construction
    /// (see [`fill`](Self::fill)).
    #[inline]
    fn hinted(&self, r: &Reference) -> Option<Arc<K>> {
        let now = sync::now_nanos();
        let (body, report) = r.hint.with(|h| {
            let h = h.filter(|h| h.expires > now)?;
            let last = h.reported.get();
            let report = last == 0 || now.saturating_sub(last) >= REPORT_EVERY;
            if report {
                h.reported.set(now);
            }
            Some((Arc::clone(&h.body), report))
        })?;
        if report {
            // Outside the slot's guard: the cache's eviction hook clears hints.
            drop(self.cache.get(&Self::key_of(r)));
        }
        // Only `fill` sets hints, always with a body of this store's `K`.
        body.downcast::<K>().ok()
    }

    /// A cached body for `r` at `r`'s version: through its hint, else the cache.
    fn cached(&self, r: &Reference) -> Option<Arc<K>> {
        self.hinted(r)
            .or_else(|| self.lookup(Self::key_of(r), Some(r.resource_version())))
    }

    /// Accounts for an entry removed from the cache and clears its owner's hint.
    fn dropped(&self, old: &Entry<K>) {
        self.stats.bytes.sub(u64::from(old.bytes));
        old.release();
    }

    /// A cached body of version `rv` (any, if `None`) that has not expired; unlike
    /// [`lookup`](Self::lookup) it takes no write lock to drop an expired entry.
    fn peek(&self, key: KeyRef<'_>, rv: Option<&str>) -> Option<Arc<K>> {
        let entry = self.cache.get(&key)?;
        let fresh = entry.expires > sync::now_nanos();
        let current = rv.is_none_or(|rv| entry.resource_version.is(rv));
        (fresh && current).then_some(entry.object)
    }

    /// A cached body for `r` that is fresh and of `r`'s resourceVersion.
    fn lookup(&self, key: KeyRef<'_>, rv: Option<Option<&str>>) -> Option<Arc<K>> {
        let entry = self.cache.get(&key)?;
        if entry.expires <= sync::now_nanos() {
            if let Some(old) = self.cache.remove(&key) {
                self.stats.expirations.incr();
                self.dropped(&old);
            }
            return None;
        }
        if let Some(Some(rv)) = rv
            && !entry.resource_version.is(rv)
        {
            return None;
        }
        Some(entry.object)
    }

    /// One object through the cache and the singleflight. `rv`: `Some(v)` to require
    /// the body to be of the reference's version `v` (`Some(None)`: any). `owner`: the
    /// reference being resolved, whose hint a fetched body of its version is put in.
    async fn resolve(
        &self,
        key: KeyRef<'_>,
        rv: Option<Option<&str>>,
        owner: Option<&Arc<Reference>>,
    ) -> FetchResult<K> {
        let KeyRef {
            hash,
            namespace,
            name,
        } = key;
        let mut first = true;
        loop {
            if let Some(object) = self.lookup(key, rv) {
                // Counted once: a caller that already counted a miss is not also a hit.
                if first {
                    self.stats.hits.incr();
                }
                return Ok(Some(Fetched { object, bytes: 0 }));
            }
            let join = self.flights.join(
                hash,
                |k| k.is(namespace, name),
                || key.to_owned(),
                || self.lookup(key, rv),
            );
            match join {
                Join::Ready(object) => {
                    if first {
                        self.stats.hits.incr();
                    }
                    return Ok(Some(Fetched { object, bytes: 0 }));
                }
                Join::Wait(wait) => {
                    if first {
                        self.stats.misses.incr();
                        self.stats.coalesced.incr();
                        first = false;
                    }
                    match wait.await {
                        Outcome::Done(result) => return result,
                        Outcome::Abandoned => continue,
                        Outcome::Panicked => return Err(FetchError::LeaderPanicked),
                    }
                }
                Join::Lead(leader) => {
                    if first {
                        self.stats.misses.incr();
                    }
                    self.stats.fetches.incr();
                    let started = sync::Stopwatch::start();
                    let result = self
                        .fetcher
                        .fetch(namespace, name)
                        .await
                        .and_then(|found| fetch::check_identity(namespace, name, found));
                    self.stats.record_fetch(started.elapsed_nanos());
                    match &result {
                        Err(_) => self.stats.fetch_errors.incr(),
                        Ok(None) => self.stats.not_found.incr(),
                        Ok(Some(_)) => {}
                    }
                    leader.complete(result.clone(), |result| self.fill(key, owner, result));
                    return result;
                }
            }
        }
    }

    /// Caches a fetched body (called under the flight's shard lock, only if no
    /// invalidation happened since the fetch began). If the body is of `owner`'s
    /// version, `owner`'s hint points at it, set after any earlier entry of the key is
    /// removed (clearing its hint) and before the entry is inserted (so an insert that
    /// evicts it at once clears the hint again): a hint never outlives its entry.
    fn fill(&self, key: KeyRef<'_>, owner: Option<&Arc<Reference>>, result: &FetchResult<K>) {
        let Ok(Some(fetched)) = result else { return };
        let bytes = u32::try_from(fetched.bytes).unwrap_or(u32::MAX);
        let rv = fetched.object.meta().resource_version.as_deref();
        let expires = sync::now_nanos()
            .saturating_add(u64::try_from(self.settings.ttl.as_nanos()).unwrap_or(u64::MAX));
        let owner = owner.filter(|r| r.resource_version() == rv).cloned();
        let entry = Entry {
            object: Arc::clone(&fetched.object),
            resource_version: Version::of(rv),
            expires,
            bytes,
            weigh_bytes: self.settings.max_bytes.is_some(),
            owner: owner.clone(),
        };
        if let Some(old) = self.cache.remove(&key) {
            self.dropped(&old);
        }
        if let Some(r) = &owner {
            let body: Arc<dyn Any + Send + Sync> = Arc::clone(&fetched.object) as _;
            r.hint.set(Some(Arc::new(Hint {
                body,
                expires,
                reported: Stamp::default(),
            })));
        }
        self.stats.bytes.add(u64::from(bytes));
        self.cache.insert(key.to_owned(), entry);
    }

    fn fetch_error<S: AsRef<str>>(
        keys: &[S],
        namespace: &str,
        name: &str,
        cause: FetchError,
    ) -> StoreError {
        let object = if namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{namespace}/{name}")
        };
        StoreError::new(Operation::Fetch, keys, ErrorKind::Fetch { object, cause })
    }

    async fn resolve_all<S: AsRef<str>>(
        &self,
        keys: &[S],
        refs: &[Arc<Reference>],
    ) -> Result<Vec<Arc<K>>, StoreError> {
        // Hits first, synchronously: a fully cached read makes no future at all and no
        // vector besides the result.
        let mut found: Vec<Arc<K>> = Vec::with_capacity(refs.len());
        for r in refs {
            match self.cached(r) {
                Some(obj) => found.push(obj),
                None => break,
            }
        }
        self.stats.hits.add(found.len() as u64);
        if found.len() == refs.len() {
            return Ok(found);
        }
        // `refs[found.len()]` just missed; look up the rest once each.
        let first_miss = found.len();
        let mut out: Vec<Option<Arc<K>>> = found.into_iter().map(Some).collect();
        out.push(None);
        let mut missed = vec![first_miss];
        for (i, r) in refs.iter().enumerate().skip(first_miss + 1) {
            match self.cached(r) {
                Some(obj) => {
                    self.stats.hits.incr();
                    out.push(Some(obj));
                }
                None => {
                    out.push(None);
                    missed.push(i);
                }
            }
        }
        if !missed.is_empty() {
            use futures::StreamExt;
            let fetches: Vec<_> = missed
                .into_iter()
                .map(|i| {
                    let r = Arc::clone(&refs[i]);
                    async move {
                        let result = self
                            .resolve(Self::key_of(&r), Some(r.resource_version()), Some(&r))
                            .await;
                        (i, result)
                    }
                })
                .collect();
            let mut results =
                futures::stream::iter(fetches).buffer_unordered(self.fetch_concurrency);
            while let Some((i, result)) = results.next().await {
                match result {
                    Ok(found) => out[i] = found.map(|f| f.object),
                    Err(cause) => {
                        let r = &refs[i];
                        return Err(Self::fetch_error(keys, &r.namespace, &r.name, cause));
                    }
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// See [`CachedStore::get`].
    pub(crate) async fn get<S: AsRef<str>>(&self, keys: &[S]) -> Result<Vec<Arc<K>>, StoreError> {
        if let Some(obj) = self.exact_hit(keys) {
            return Ok(vec![obj]);
        }
        // Boxed, so that the future of a hit stays a few words (moving it copies
        // little); a miss pays one allocation beside its API call.
        Box::pin(async move {
            let refs = self.index.get(keys)?;
            self.resolve_all(keys, &refs).await
        })
        .await
    }

    /// See [`CachedStore::get_one`].
    pub(crate) async fn get_one<S: AsRef<str>>(
        &self,
        keys: &[S],
    ) -> Result<Option<Arc<K>>, StoreError> {
        if let Some(obj) = self.exact_hit(keys) {
            return Ok(Some(obj));
        }
        Box::pin(async move {
            let Some(r) = self.index.get_one(keys)? else {
                return Ok(None);
            };
            Ok(self
                .resolve_all(keys, std::slice::from_ref(&r))
                .await?
                .pop())
        })
        .await
    }

    /// See [`CachedStore::fetch`].
    pub(crate) async fn fetch(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<K>>, StoreError> {
        match self.resolve(self.key(namespace, name), None, None).await {
            Ok(found) => Ok(found.map(|f| f.object)),
            Err(cause) => Err(Self::fetch_error(
                &[namespace, name],
                namespace,
                name,
                cause,
            )),
        }
    }

    /// See [`CachedStore::list`].
    pub(crate) async fn list(&self) -> Result<Snapshot<K>, StoreError> {
        let refs = self.index.list().to_vec();
        let objects = self.resolve_all::<&str>(&[], &refs).await?;
        // A snapshot is only iterated, never searched: no separators needed.
        Ok(Snapshot::new(PTree::from_sorted(objects, |_| NO_SEP)))
    }

    /// See [`CachedStore::stats`].
    pub(crate) fn stats(&self) -> CacheStats {
        stats_of(&self.stats, self.cache.len())
    }

    /// See [`CachedStore::fetcher`].
    pub(crate) fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// See [`CachedStore::validate`].
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.index.validate()?;
        let flights = self.flights.len();
        if flights != 0 {
            return Err(format!("{flights} flights registered while idle"));
        }
        // A hint never outlives its entry: every hinted reference in the index owns
        // the cache entry of its key.
        for r in &self.index.list() {
            if !r.hint.is_some() {
                continue;
            }
            let owned = self
                .cache
                .peek(&Self::key_of(r))
                .is_some_and(|e| e.owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, r)));
            if !owned {
                return Err(format!(
                    "{}/{} has a hint but the cache holds no entry of it for this reference",
                    r.namespace, r.name
                ));
            }
        }
        if self.cache.len() > self.settings.max_entries && self.settings.max_bytes.is_none() {
            return Err(format!(
                "{} entries resident, above max_entries {}",
                self.cache.len(),
                self.settings.max_entries
            ));
        }
        Ok(())
    }
}

fn stats_of(s: &Stats, entries: usize) -> CacheStats {
    CacheStats {
        hits: s.hits.get(),
        misses: s.misses.get(),
        coalesced: s.coalesced.get(),
        fetches: s.fetches.get(),
        fetch_errors: s.fetch_errors.get(),
        not_found: s.not_found.get(),
        evictions: s.evictions.get(),
        expirations: s.expirations.get(),
        entries: entries as u64,
        bytes: s.bytes.get(),
        fetch_time: Duration::from_nanos(s.fetch_nanos.get()),
        fetch_latency: std::array::from_fn(|i| s.fetch_latency[i].get()),
    }
}
