//! The one place where synchronisation primitives come from.
//!
//! Every other module imports `crate::sync::...`, never `std::sync` or `arc_swap`
//! directly, so that building with `RUSTFLAGS="--cfg k8s_store_loom"` swaps in
//! loom-modelled stand-ins and the model checker sees every lock, atomic and
//! publication the store's protocols rely on (see `loom-tests/`).
//!
//! A reader of the index loads the state the writer published, through [`Published`],
//! and finds everything else from it: the exact-key table is part of that state (its
//! slots are [`AtomicPtr`]s, into which the writer stores new entries before it
//! publishes), as are the secondary indexes' members ([`Versioned`]). No read of the
//! index takes a lock. There is no sharded map any more (the exact-key index used to
//! be the shards of a `dashmap`, each behind a reader-writer lock).
//!
//! | primitive          | normal build                         | `k8s_store_loom`                      |
//! |--------------------|--------------------------------------|---------------------------------------|
//! | [`AtomicPtr`]      | std's                                | loom's                                |
//! | [`Published`]      | `arc_swap::ArcSwap`                  | `loom::sync::RwLock<Arc<T>>`          |
//! | [`Slot`]           | `arc_swap::ArcSwapOption`            | `loom::sync::RwLock<Option<Arc<T>>>`  |
//! | [`Mutex`]          | `std::sync::Mutex` without poisoning | `loom::sync::Mutex`                   |
//! | [`Counter`], [`Stamp`] | `AtomicU64` (relaxed)            | `loom::sync::atomic::AtomicU64`       |
//! | [`Versioned`], [`MarkCell`] | std atomics (release / acquire)      | loom's atomics                        |
//! | [`now_nanos`], [`Stopwatch`] | the coarse / precise monotonic clocks | clocks that stand still |
//! | [`Cache`]          | `quick_cache::sync::Cache`           | `loom::sync::Mutex<HashMap>`, bounded |
//!
//! # Orderings
//!
//! [`Counter`]s are statistics: each is an independent monotonic sum that no protocol
//! reads to decide anything, so `Relaxed` suffices for every access. A [`Stamp`] only
//! rate-limits how often a hit is reported to the cache's eviction policy; a stale
//! read reports one hit more or fewer, which no protocol depends on, so it is
//! `Relaxed` too. [`Versioned`] has its own protocol, explained there, and so has the
//! exact-key table's use of [`AtomicPtr`] (`index::exact`: entries stored with
//! `Release`, loaded with `Acquire`). Everything else that orders the store's state
//! goes through the locks, the `Published` swap and the `Slot` (arc-swap's loads and
//! stores are sequentially consistent: a body stored in a slot is fully built before
//! any reader can load it).
//!
//! `Arc` is `std::sync::Arc` in both builds: it is part of the public API (objects are
//! handed in and out as `Arc<K>`), and reference counting is not one of our protocols.
//!
//! The std side mirrors loom's API without lock poisoning, as tokio's `loom` module
//! does: a panic while a lock is held cannot leave the store's data half-written,
//! because every write builds its new state first and publishes it in one step.

pub(crate) use std::sync::Arc;

#[cfg(not(k8s_store_loom))]
#[path = "std.rs"]
mod imp;
#[cfg(k8s_store_loom)]
#[path = "loom.rs"]
mod imp;

pub(crate) use imp::{
    AtomicPtr, Mutex, Published, Slot, default_index_shards, default_shard_count,
};

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
/// last kernel tick, several times cheaper to read than the precise clock, with the
/// tick's resolution (1-4 ms), far below any useful TTL. Elsewhere it is std's monotonic clock. In loom models it stands still (at 1):
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

pub(crate) use imp::cache::Cache;

/// The current version of an identity (a pointer), the stamp of the write that made it
/// current, and a pointer to the record of the versions before, which one writer
/// replaces and any thread reads without a lock (see [`latest`](crate::index::latest),
/// which gives the pointers their meaning). In a store with a label index, each
/// version also has its label marks (a 64-bit summary of its labels, see
/// [`secondary::marks_of`](crate::index::secondary::marks_of)) in a [`MarkCell`]
/// beside it, which every method then takes; without one they take `None`, and the
/// `Versioned` costs 24 bytes instead of 32.
///
/// # Orderings
///
/// The writer replaces the current version in four or five stores: `older` (a record
/// of the version it replaces), `at` set to [`WRITING`](Self::WRITING), `version`, the
/// marks if there are any, then `at` set to the new stamp; each with `Release`. A
/// reader ([`read`](Self::read)) loads `at`, `version`, the marks and `at` again, and
/// takes the version and its marks only if both loads of `at` agree on a stamp no later
/// than its state's:
///
/// - if it saw a new `version` or new marks, its `Acquire` load synchronises with that
///   store, so its second load of `at` sees `WRITING` or a later stamp, never the first
///   one: stamps only grow (a batch that writes an identity twice reuses its own stamp,
///   which no reader's state has yet), so the two loads disagree and the read fails;
/// - if its first load saw the stamp a write ended with, its `Acquire` makes that
///   write's `version` and marks visible: the two it takes are one write's.
///
/// Every load is `Acquire`, the second of `at` included: a reader whose two loads
/// disagree reads `older` next, and must see the record of the write that it saw.
///
/// A reader that fails, or whose state is older than `at`, loads `older`; having seen
/// `WRITING`, a later stamp or a later version (all stored after `older`, with
/// `Release`, and loaded with `Acquire`), it sees at least the record the write that
/// stored them made.
#[derive(Debug)]
pub(crate) struct Versioned {
    at: imp::AtomicU64,
    version: imp::AtomicUsize,
    older: imp::AtomicUsize,
}

/// The label marks of a [`Versioned`]'s current version, kept beside it (see there).
#[derive(Debug)]
pub(crate) struct MarkCell(imp::AtomicU64);

impl MarkCell {
    pub(crate) fn new(marks: u64) -> Self {
        Self(imp::AtomicU64::new(marks))
    }

    /// The marks of the current version, as a hint: they may be of a version older or
    /// newer than any reader's. Only a prefetch decision reads them.
    #[inline]
    pub(crate) fn hint(&self) -> u64 {
        // Relaxed: decides only whether to prefetch, which changes no result.
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The marks of a version without a [`MarkCell`]: every bit, so that nothing a marks
/// check asks of them is missing (such a store has no label index to ask).
pub(crate) const ALL_MARKS: u64 = u64::MAX;

impl Versioned {
    /// The value of `at` while the writer replaces the version.
    const WRITING: u64 = u64::MAX;

    /// `version`, current since the write stamped `at`, with no older record (0).
    pub(crate) fn new(version: usize, at: u64) -> Self {
        Self {
            at: imp::AtomicU64::new(at),
            version: imp::AtomicUsize::new(version),
            older: imp::AtomicUsize::new(0),
        }
    }

    /// Makes `version` current from the write stamped `at` (below `WRITING`), with
    /// `older` as the record of the versions before, and its marks `marks` in the cell
    /// beside it (if it has one). Only one thread (the store's writer) ever calls it.
    pub(crate) fn set(
        &self,
        version: usize,
        at: u64,
        older: usize,
        marks: Option<(&MarkCell, u64)>,
    ) {
        use std::sync::atomic::Ordering::Release;
        debug_assert!(at < Self::WRITING);
        self.older.store(older, Release);
        self.at.store(Self::WRITING, Release);
        self.version.store(version, Release);
        if let Some((cell, marks)) = marks {
            cell.0.store(marks, Release);
        }
        self.at.store(at, Release);
    }

    /// The current version, its stamp and its marks (`ALL_MARKS` without a cell), as
    /// the writer set them last. The writer only.
    pub(crate) fn current(&self, cell: Option<&MarkCell>) -> (usize, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        // Relaxed: the writer reads its own stores.
        (
            self.version.load(Relaxed),
            self.at.load(Relaxed),
            cell.map_or(ALL_MARKS, |c| c.0.load(Relaxed)),
        )
    }

    /// The current version, for any thread: one that is or was lately current, and
    /// whose store this load synchronises with.
    #[inline]
    pub(crate) fn version(&self) -> usize {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current version and its marks (`ALL_MARKS` without a cell) if it was made
    /// current by a write stamped `stamp` or earlier and no write overlapped the read;
    /// else `None`, and the caller reads [`older`](Self::older).
    #[inline]
    pub(crate) fn read(&self, stamp: u64, cell: Option<&MarkCell>) -> Option<(usize, u64)> {
        use std::sync::atomic::Ordering::Acquire;
        let at = self.at.load(Acquire);
        if at > stamp {
            // Newer than the reader's state, or being written (`WRITING`).
            return None;
        }
        let version = self.version.load(Acquire);
        let marks = cell.map_or(ALL_MARKS, |c| c.0.load(Acquire));
        // Acquire, not only ordered after the load of `version`: a reader that sees a
        // later write here goes on to `older`, and must see that write's record there.
        // (With `Relaxed`, the loom model `two_updates_that_keep_their_keys_are_seen_in_order`
        // finds a reader that read the record before it, of a state older than its own,
        // already freed.)
        (self.at.load(Acquire) == at).then_some((version, marks))
    }

    /// The record of the versions before the current one (0 for none), at least as new
    /// as the one stored with anything this thread has seen of the writer.
    #[inline]
    pub(crate) fn older(&self) -> usize {
        self.older.load(std::sync::atomic::Ordering::Acquire)
    }
}
