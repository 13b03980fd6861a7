//! The loom-modelled stand-ins, under `--cfg k8s_store_loom` (see the
//! [parent module](super)).

pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};

use super::Arc;
use std::ops::DerefMut;

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
        let old = std::mem::replace(&mut *self.inner.write().expect("loom lock poisoned"), value);
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

/// The bounded cache's stand-in: a loom mutex over a small map.
pub(crate) mod cache {
    use crate::sync::{CacheValue, OnEvict};
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
