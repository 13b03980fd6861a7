//! The on-demand tier's counters: [`CacheStats`] and the fetch-latency buckets.

use std::time::Duration;

use crate::sync::Counter;

#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) hits: Counter,
    pub(super) misses: Counter,
    pub(super) coalesced: Counter,
    pub(super) fetches: Counter,
    pub(super) fetch_errors: Counter,
    pub(super) not_found: Counter,
    pub(super) evictions: Counter,
    pub(super) expirations: Counter,
    pub(super) bytes: Counter,
    pub(super) fetch_nanos: Counter,
    /// Fetches by duration: `fetch_latency[i]` counts those that took at most
    /// `FETCH_LATENCY_BUCKETS[i]` seconds and more than the bucket before (the last
    /// bucket is open-ended: those above every bound).
    pub(super) fetch_latency: [Counter; FETCH_LATENCY_BUCKETS.len() + 1],
}

/// The upper bounds, in seconds, of the fetch-latency histogram in
/// [`CacheStats::fetch_latency`] (Prometheus's default buckets, from 1 ms).
pub const FETCH_LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Stats {
    pub(super) fn record_fetch(&self, nanos: u64) {
        self.fetch_nanos.add(nanos);
        let secs = nanos as f64 / 1e9;
        let bucket = FETCH_LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(FETCH_LATENCY_BUCKETS.len());
        self.fetch_latency[bucket].incr();
    }
}

/// Counters of a [`CachedStore`](crate::CachedStore), from [`CachedStore::stats`](crate::CachedStore::stats). Each is a sum since the
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

pub(super) fn stats_of(s: &Stats, entries: usize) -> CacheStats {
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
