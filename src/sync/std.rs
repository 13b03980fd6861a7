//! The primitives of a normal build (see the [parent module](super)).

pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};

use super::Arc;
use std::ops::DerefMut;

/// The default shard count of the sharded structures that still have shards (the
/// on-demand tier's cache and singleflight): four per core, rounded up to a power of
/// two.
pub(crate) fn default_shard_count() -> usize {
    (std::thread::available_parallelism().map_or(1, usize::from) * 4)
        .next_power_of_two()
        .max(2)
}

/// The shard count a store reports when it was built without one: 1024, or four per
/// core where that is more (what the sharded exact-key index used to default to). The
/// exact-key index has no shards any more (see `index::exact`); the setting is kept,
/// validated and reported for compatibility.
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

    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
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

/// The bounded cache of a normal build.
pub(crate) mod cache {
    use crate::sync::{CacheValue, OnEvict};
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
        #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
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
