//! The one place where synchronisation primitives come from.
//!
//! Every other module imports `crate::sync::...`, never `std::sync`, `dashmap` or
//! `arc_swap` directly, so that building with `RUSTFLAGS="--cfg k8s_store_loom"` swaps
//! in loom-modelled stand-ins and the model checker sees every lock and publication
//! the store's protocols rely on (see `loom-tests/`).
//!
//! | primitive          | normal build                         | `k8s_store_loom`                      |
//! |--------------------|--------------------------------------|---------------------------------------|
//! | [`Shards`]         | the shards of a `dashmap::DashMap`   | a few `loom::sync::RwLock<HashTable>` |
//! | [`Published`]      | `arc_swap::ArcSwap`                  | `loom::sync::RwLock<Arc<T>>`          |
//! | [`Slot`]           | `arc_swap::ArcSwapOption`            | `loom::sync::RwLock<Option<Arc<T>>>`  |
//! | [`Mutex`]          | `std::sync::Mutex` without poisoning | `loom::sync::Mutex`                   |
//! | [`Counter`], [`Stamp`] | `AtomicU64` (relaxed)            | `loom::sync::atomic::AtomicU64`       |
//! | [`now_nanos`], [`Stopwatch`] | the coarse / precise monotonic clocks | clocks that stand still |
//! | [`Cache`]          | `quick_cache::sync::Cache`           | `loom::sync::Mutex<HashMap>`, bounded |
//!
//! # Orderings
//!
//! [`Counter`]s are statistics: each is an independent monotonic sum that no protocol
//! reads to decide anything, so `Relaxed` suffices for every access. A [`Stamp`] only
//! rate-limits how often a hit is reported to the cache's eviction policy; a stale
//! read reports one hit more or fewer, which no protocol depends on, so it is
//! `Relaxed` too. Everything that orders the store's state goes through the locks, the
//! `Published` swap and the `Slot` (arc-swap's loads and stores are sequentially
//! consistent: a body stored in a slot is fully built before any reader can load it).
//!
//! `Arc` is `std::sync::Arc` in both builds: it is part of the public API (objects are
//! handed in and out as `Arc<K>`), and reference counting is not one of our protocols.
//!
//! The std side mirrors loom's API without lock poisoning, as tokio's `loom` module
//! does: a panic while a lock is held cannot leave the store's data half-written,
//! because every write builds its new state first and publishes it in one step.

pub(crate) use std::sync::Arc;

/// A shard's table: composite-key hash -> bucket. The `()` key is dashmap's slot for a
/// key we do not need: buckets are found by a precomputed 64-bit hash and compared by
/// their own key, so each slot is exactly one bucket wide.
pub(crate) type Table<V> = hashbrown::HashTable<((), V)>;

#[cfg(not(k8s_store_loom))]
mod imp {
    pub(crate) use std::sync::atomic::AtomicU64;

    use super::{Arc, Table};
    use std::hash::BuildHasherDefault;
    use std::ops::{Deref, DerefMut};

    /// Hash-sharded tables, each behind its own reader-writer lock.
    ///
    /// Backed by `dashmap`'s shards (its `raw-api`): dashmap supplies the cache-padded,
    /// spin-then-park reader-writer locks and the shard arithmetic; we drive the
    /// `HashTable` inside each shard ourselves, because a move of an object between two
    /// composite keys must hold both shards' locks at once, which dashmap's per-key API
    /// cannot express.
    pub(crate) struct Shards<V> {
        map: dashmap::DashMap<(), V, BuildHasherDefault<NoHash>>,
    }

    /// dashmap insists on a hasher; we never let it hash anything.
    #[derive(Default)]
    pub(crate) struct NoHash;

    impl std::hash::Hasher for NoHash {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, _: &[u8]) {}
    }

    impl<V> Shards<V> {
        /// `n` must be a power of two greater than one (checked by the builder).
        pub(crate) fn new(n: usize) -> Self {
            Self {
                map: dashmap::DashMap::with_hasher_and_shard_amount(
                    BuildHasherDefault::default(),
                    n,
                ),
            }
        }

        pub(crate) fn len(&self) -> usize {
            self.map.shards().len()
        }

        /// The shard that holds `hash`.
        pub(crate) fn index(&self, hash: u64) -> usize {
            self.map.determine_shard(hash as usize)
        }

        pub(crate) fn read(&self, shard: usize) -> impl Deref<Target = Table<V>> + '_ {
            self.map.shards()[shard].read()
        }

        pub(crate) fn write(&self, shard: usize) -> impl DerefMut<Target = Table<V>> + '_ {
            self.map.shards()[shard].write()
        }
    }

    /// The default shard count: dashmap's (four per core, rounded up to a power of two).
    pub(crate) fn default_shard_count() -> usize {
        (std::thread::available_parallelism().map_or(1, usize::from) * 4)
            .next_power_of_two()
            .max(2)
    }

    /// The default shard count of the exact-key index: 1024, or dashmap's default where
    /// that is more. Many shards, whatever the core count, because what stalls the
    /// writer is a reader descheduled while it holds a shard's read lock (preempted on
    /// a busy node, or throttled by a CPU limit), and the chance that the writer needs
    /// exactly that shard is one in the shard count. The shards cost 128 bytes each
    /// (128 KiB a store); a get touches one of them.
    pub(crate) fn default_index_shards() -> usize {
        default_shard_count().max(1024)
    }

    /// A value published for lock-free readers.
    pub(crate) struct Published<T> {
        inner: arc_swap::ArcSwap<T>,
    }

    impl<T> Published<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            Self {
                inner: arc_swap::ArcSwap::new(value),
            }
        }

        /// An owned handle to the current value; never blocks, never holds a guard.
        pub(crate) fn load_full(&self) -> Arc<T> {
            self.inner.load_full()
        }

        /// Runs `f` on the current value under arc-swap's short-lived guard. `f` must
        /// not call back into the store (it only clones what it needs out).
        pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
            f(&self.inner.load())
        }

        /// Publishes `value` and hands back the previous value, so the caller can drop
        /// it after releasing its locks.
        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            self.inner.swap(value)
        }
    }

    /// An optional value that any thread may replace and readers load without a lock.
    pub(crate) struct Slot<T> {
        inner: arc_swap::ArcSwapOption<T>,
    }

    impl<T> Slot<T> {
        pub(crate) fn empty() -> Self {
            Self {
                inner: arc_swap::ArcSwapOption::empty(),
            }
        }

        /// Runs `f` on the current value under arc-swap's short-lived guard. `f` must
        /// not call back into the store (it only clones what it needs out).
        pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
            f(self.inner.load().as_deref())
        }

        /// Replaces the value (the previous one is dropped here).
        pub(crate) fn set(&self, value: Option<Arc<T>>) {
            self.inner.store(value);
        }

        pub(crate) fn is_some(&self) -> bool {
            self.inner.load().is_some()
        }
    }

    /// A mutex without poisoning.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> impl DerefMut<Target = T> + '_ {
            // Poisoning is ignored (as in loom and parking_lot): writers build each new
            // state aside and publish it in one step, so a panic cannot leave a torn one.
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

#[cfg(k8s_store_loom)]
mod imp {
    pub(crate) use loom::sync::atomic::AtomicU64;

    use super::{Arc, Table};
    use std::ops::{Deref, DerefMut};

    /// Loom stand-in for the dashmap shards: a few loom reader-writer locks.
    pub(crate) struct Shards<V> {
        shards: Vec<loom::sync::RwLock<Table<V>>>,
    }

    impl<V> Shards<V> {
        pub(crate) fn new(n: usize) -> Self {
            Self {
                shards: (0..n)
                    .map(|_| loom::sync::RwLock::new(Table::new()))
                    .collect(),
            }
        }

        pub(crate) fn len(&self) -> usize {
            self.shards.len()
        }

        pub(crate) fn index(&self, hash: u64) -> usize {
            (hash as usize) % self.shards.len()
        }

        pub(crate) fn read(&self, shard: usize) -> impl Deref<Target = Table<V>> + '_ {
            // loom's locks report poisoning only after a panic, which ends the model.
            self.shards[shard].read().expect("loom lock poisoned")
        }

        pub(crate) fn write(&self, shard: usize) -> impl DerefMut<Target = Table<V>> + '_ {
            self.shards[shard].write().expect("loom lock poisoned")
        }
    }

    /// Models keep state spaces small: two shards, so keys both share and split them.
    pub(crate) fn default_shard_count() -> usize {
        2
    }

    /// As [`default_shard_count`]: two.
    pub(crate) fn default_index_shards() -> usize {
        2
    }

    /// Loom stand-in for `ArcSwap`: a reader-writer lock around an `Arc`.
    pub(crate) struct Published<T> {
        inner: loom::sync::RwLock<Arc<T>>,
    }

    impl<T> Published<T> {
        pub(crate) fn new(value: Arc<T>) -> Self {
            Self {
                inner: loom::sync::RwLock::new(value),
            }
        }

        pub(crate) fn load_full(&self) -> Arc<T> {
            Arc::clone(&self.inner.read().expect("loom lock poisoned"))
        }

        pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
            let value = self.load_full();
            f(&value)
        }

        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            std::mem::replace(&mut *self.inner.write().expect("loom lock poisoned"), value)
        }
    }

    /// Loom stand-in for `ArcSwapOption`: a reader-writer lock around an `Option<Arc>`.
    pub(crate) struct Slot<T> {
        inner: loom::sync::RwLock<Option<Arc<T>>>,
    }

    impl<T> Slot<T> {
        pub(crate) fn empty() -> Self {
            Self {
                inner: loom::sync::RwLock::new(None),
            }
        }

        pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
            let value = self.inner.read().expect("loom lock poisoned").clone();
            f(value.as_deref())
        }

        pub(crate) fn set(&self, value: Option<Arc<T>>) {
            let old =
                std::mem::replace(&mut *self.inner.write().expect("loom lock poisoned"), value);
            drop(old);
        }

        pub(crate) fn is_some(&self) -> bool {
            self.inner.read().expect("loom lock poisoned").is_some()
        }
    }

    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> impl DerefMut<Target = T> + '_ {
            self.0.lock().expect("loom lock poisoned")
        }
    }
}

pub(crate) use imp::{Mutex, Published, Shards, Slot, default_index_shards, default_shard_count};

/// A statistics counter. See the module's `# Orderings`.
#[derive(Debug, Default)]
pub(crate) struct Counter(imp::AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        // Relaxed: a statistic, read by nothing that orders state (module docs).
        self.0.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn incr(&self) {
        self.add(1);
    }

    pub(crate) fn sub(&self, n: u64) {
        // Relaxed: as in `add`. Saturates instead of wrapping, so that a statistic
        // updated out of order by two threads never reads as a huge number.
        let _ = self.0.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |v| Some(v.saturating_sub(n)),
        );
    }

    pub(crate) fn get(&self) -> u64 {
        // Relaxed: as in `add`.
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A time stamp that any thread may read and overwrite. See the module's `# Orderings`.
#[derive(Debug, Default)]
pub(crate) struct Stamp(imp::AtomicU64);

impl Stamp {
    pub(crate) fn get(&self) -> u64 {
        // Relaxed: a rate limiter, read by nothing that orders state (module docs).
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set(&self, v: u64) {
        // Relaxed: as in `get`.
        self.0.store(v, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The clock of cache expiry, in nanoseconds since an arbitrary start.
///
/// On Linux (outside loom models) it reads `CLOCK_MONOTONIC_COARSE`: the time of the
/// last kernel tick, a few nanoseconds per read (the precise clock costs about 20 ns,
/// a tenth of a cache hit), with the tick's resolution (1-4 ms), far below any useful
/// TTL. Elsewhere it is std's monotonic clock. In loom models it stands still (at 1):
/// loom requires every execution of a model to take the same decisions, and no model
/// waits for a TTL.
pub(crate) fn now_nanos() -> u64 {
    #[cfg(k8s_store_loom)]
    {
        1
    }
    #[cfg(all(target_os = "linux", not(k8s_store_loom)))]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
        // A monotonic clock is never negative.
        (t.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec as u64)
    }
    #[cfg(all(not(target_os = "linux"), not(k8s_store_loom)))]
    {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let start = *START.get_or_init(std::time::Instant::now);
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Measures how long something took, precisely (the fetch latency in the on-demand
/// tier's statistics): std's monotonic clock, except in loom models, where it reads
/// zero, as [`now_nanos`] stands still there.
pub(crate) struct Stopwatch {
    #[cfg(not(k8s_store_loom))]
    started: std::time::Instant,
}

impl Stopwatch {
    pub(crate) fn start() -> Self {
        Self {
            #[cfg(not(k8s_store_loom))]
            started: std::time::Instant::now(),
        }
    }

    /// Nanoseconds since [`start`](Self::start).
    pub(crate) fn elapsed_nanos(&self) -> u64 {
        #[cfg(k8s_store_loom)]
        {
            0
        }
        #[cfg(not(k8s_store_loom))]
        {
            u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
        }
    }
}

/// What the cache needs to know about a value.
pub(crate) trait CacheValue: Clone {
    /// Weight against the capacity (1 per entry, or bytes with a byte budget).
    fn weight(&self) -> u64;
}

/// Called once for each value the cache evicts to make room.
pub(crate) type OnEvict<Val> = std::sync::Arc<dyn Fn(&Val) + Send + Sync>;

#[cfg(not(k8s_store_loom))]
mod cache_imp {
    use super::{CacheValue, OnEvict};
    use std::hash::Hash;

    #[derive(Clone, Debug)]
    pub(crate) struct Weigh;

    impl<Key, Val: CacheValue> quick_cache::Weighter<Key, Val> for Weigh {
        fn weight(&self, _: &Key, val: &Val) -> u64 {
            val.weight()
        }
    }

    pub(crate) struct Evict<Val>(OnEvict<Val>);

    impl<Val> Clone for Evict<Val> {
        fn clone(&self) -> Self {
            Self(std::sync::Arc::clone(&self.0))
        }
    }

    impl<Key, Val: CacheValue> quick_cache::Lifecycle<Key, Val> for Evict<Val> {
        type RequestState = ();
        fn on_evict(&self, _: &mut (), _: Key, val: Val) {
            (self.0)(&val);
        }
    }

    /// A bounded concurrent cache (quick_cache: sharded, CLOCK-Pro-like admission,
    /// no allocation on hits).
    pub(crate) struct Cache<Key, Val: CacheValue> {
        inner: quick_cache::sync::Cache<Key, Val, Weigh, foldhash::fast::RandomState, Evict<Val>>,
    }

    impl<Key: Eq + Hash, Val: CacheValue> Cache<Key, Val> {
        /// `capacity` in weight units (never exceeded); `items` is the expected number
        /// of entries; `on_evict` sees each value evicted to make room.
        pub(crate) fn new(items: usize, capacity: u64, on_evict: OnEvict<Val>) -> Self {
            // quick_cache splits the capacity across shards rounding up, so the total
            // could exceed `capacity` by up to shards - 1. Pick the shard count as it
            // would (a power of two, at least 32 items per shard) and round the
            // capacity down to a multiple of it: then the bound is exact.
            let mut shards = (std::thread::available_parallelism().map_or(1, usize::from) * 4)
                .next_power_of_two();
            while shards > 1 && (items.div_ceil(shards) < 32 || capacity < shards as u64) {
                shards /= 2;
            }
            let capacity = capacity / shards as u64 * shards as u64;
            let options = quick_cache::OptionsBuilder::new()
                .shards(shards)
                .estimated_items_capacity(items)
                .weight_capacity(capacity)
                .build();
            let inner = match options {
                Ok(options) => quick_cache::sync::Cache::with_options(
                    options,
                    Weigh,
                    foldhash::fast::RandomState::default(),
                    Evict(on_evict),
                ),
                // Unreachable with the values above (the builder only rejects missing
                // capacities); fall back to quick_cache's own sharding.
                Err(_) => quick_cache::sync::Cache::with(
                    items,
                    capacity,
                    Weigh,
                    foldhash::fast::RandomState::default(),
                    Evict(on_evict),
                ),
            };
            Self { inner }
        }

        pub(crate) fn get<Q>(&self, key: &Q) -> Option<Val>
        where
            Q: Hash + quick_cache::Equivalent<Key> + ?Sized,
        {
            self.inner.get(key)
        }

        /// As [`get`](Self::get), without counting as a hit for the eviction policy.
        pub(crate) fn peek<Q>(&self, key: &Q) -> Option<Val>
        where
            Q: Hash + quick_cache::Equivalent<Key> + ?Sized,
        {
            self.inner.peek(key)
        }

        pub(crate) fn insert(&self, key: Key, val: Val) {
            self.inner.insert(key, val);
        }

        pub(crate) fn remove<Q>(&self, key: &Q) -> Option<Val>
        where
            Q: Hash + quick_cache::Equivalent<Key> + ?Sized,
        {
            self.inner.remove(key).map(|(_, v)| v)
        }

        pub(crate) fn len(&self) -> usize {
            self.inner.len()
        }

        /// Removes every entry and hands each value to `f`.
        pub(crate) fn drain(&self, mut f: impl FnMut(Val)) {
            for (_, val) in self.inner.drain() {
                f(val);
            }
        }
    }
}

#[cfg(k8s_store_loom)]
mod cache_imp {
    use super::{CacheValue, OnEvict};
    use std::hash::Hash;

    /// Loom stand-in for the cache: entries in insertion order behind a loom mutex,
    /// the oldest evicted when over capacity (deterministic, as loom requires).
    pub(crate) struct Cache<Key, Val: CacheValue> {
        inner: loom::sync::Mutex<Vec<(Key, Val)>>,
        capacity: u64,
        on_evict: OnEvict<Val>,
    }

    impl<Key: Eq + Hash, Val: CacheValue> Cache<Key, Val> {
        pub(crate) fn new(_items: usize, capacity: u64, on_evict: OnEvict<Val>) -> Self {
            Self {
                inner: loom::sync::Mutex::new(Vec::new()),
                capacity,
                on_evict,
            }
        }

        pub(crate) fn get<Q>(&self, key: &Q) -> Option<Val>
        where
            Q: Hash + quick_cache::Equivalent<Key> + ?Sized,
        {
            let entries = self.inner.lock().expect("loom lock poisoned");
            entries
                .iter()
                .find(|(k, _)| key.equivalent(k))
                .map(|(_, v)| v.clone())
        }

        pub(crate) fn peek<Q>(&self, key: &Q) -> Option<Val>
        where
            Q: Hash + quick_cache::Equivalent<Key> + ?Sized,
        {
            self.get(key)
        }

        pub(crate) fn insert(&self, key: Key, val: Val) {
            let mut entries = self.inner.lock().expect("loom lock poisoned");
            entries.retain(|(k, _)| *k != key);
            entries.push((key, val));
            while entries.iter().map(|(_, v)| v.weight()).sum::<u64>() > self.capacity
                && !entries.is_empty()
            {
                let (_, v) = entries.remove(0);
                (self.on_evict)(&v);
            }
        }

        pub(crate) fn remove<Q>(&self, key: &Q) -> Option<Val>
        where
            Q: Hash + quick_cache::Equivalent<Key> + ?Sized,
        {
            let mut entries = self.inner.lock().expect("loom lock poisoned");
            let at = entries.iter().position(|(k, _)| key.equivalent(k))?;
            Some(entries.remove(at).1)
        }

        pub(crate) fn len(&self) -> usize {
            self.inner.lock().expect("loom lock poisoned").len()
        }

        pub(crate) fn drain(&self, f: impl FnMut(Val)) {
            let drained: Vec<Val> = {
                let mut entries = self.inner.lock().expect("loom lock poisoned");
                entries.drain(..).map(|(_, v)| v).collect()
            };
            drained.into_iter().for_each(f);
        }
    }
}

pub(crate) use cache_imp::Cache;
