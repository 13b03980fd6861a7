//! Prometheus metrics (feature `metrics`): every figure the stores and watches count,
//! in a `prometheus-client` [`Registry`], labelled by store.
//!
//! A [`StoreMetrics`] is a collector: it holds read handles and reads their `len()`,
//! [`stats()`](crate::CachedReader::stats) and watch counters **at scrape time**, so the
//! read and write paths pay nothing for it and a scrape shows exactly what `stats()`
//! shows. Register it once, after adding the stores:
//!
//! ```
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use k8s_store::MemoryStore;
//! use k8s_store::metrics::StoreMetrics;
//! use prometheus_client::registry::Registry;
//!
//! let store = MemoryStore::<ConfigMap>::new(2)?;
//! let mut metrics = StoreMetrics::new();
//! metrics.add_full("configmaps", &store.reader())?;
//! let mut registry = Registry::default();
//! metrics.register(&mut registry);
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry)?;
//! assert!(text.contains(r#"k8s_store_objects{store="configmaps"} 0"#));
//! # Ok(()) }
//! ```
//!
//! # The metrics
//!
//! Every metric has the label `store`. Counters end in `_total`, durations are in
//! seconds.
//!
//! | metric | type | from |
//! |---|---|---|
//! | `k8s_store_objects` | gauge | objects (full tier) or references (on-demand tier) held |
//! | `k8s_store_seconds_since_last_write` | gauge | [`FreshnessStats`] `since_last_write` (absent before the first write) |
//! | `k8s_store_versions_behind`, `k8s_store_waiting` | gauge | `behind`, `waiting` |
//! | `k8s_store_waits_total`, `_wait_timeouts_total` | counter | `waits`, `timeouts` |
//! | `k8s_store_cache_hits_total`, `_misses_total`, `_coalesced_waits_total` | counter | [`CacheStats`] `hits`, `misses`, `coalesced` |
//! | `k8s_store_cache_fetches_total`, `_fetch_errors_total`, `_not_found_total` | counter | `fetches`, `fetch_errors`, `not_found` |
//! | `k8s_store_cache_evictions_total`, `_expirations_total` | counter | `evictions`, `expirations` |
//! | `k8s_store_cache_entries`, `k8s_store_cache_resident_bytes` | gauge | `entries`, `bytes` |
//! | `k8s_store_cache_fetch_duration_seconds` | histogram | `fetch_latency` (buckets [`FETCH_LATENCY_BUCKETS`]) and `fetch_time` |
//! | `k8s_store_watch_events_total`, `_applied_total`, `_unchanged_total`, `_deleted_total` | counter | [`WatchStats`] |
//! | `k8s_store_watch_relists_total`, `_errors_total`, `_index_errors_total`, `_store_errors_total`, `_stray_relist_events_total` | counter | [`WatchStats`] |
//! | `k8s_store_watch_ready` | gauge | 1 once the watch's first list is in, 0 before and after the watch is gone |

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::feed::stores::{AnyStore, Stores};
use crate::feed::watch::{WatchStats, WatchStatus};
use crate::freshness::FreshnessStats;
use crate::index::store::MemoryReader;
use crate::on_demand::cached::{CacheStats, FETCH_LATENCY_BUCKETS};
use crate::on_demand::fetch::Fetch;
use crate::on_demand::store::CachedReader;

/// Why a source could not be added to a [`StoreMetrics`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A store (or a watch) of this name was added already: its series would be
    /// duplicated. Fix: give each store its own name.
    #[error("metrics: a {what} named {store:?} is registered already; each needs its own name")]
    Duplicate {
        /// The store's name.
        store: String,
        /// `"store"` or `"watch"`.
        what: &'static str,
    },
}

type Read<T> = Box<dyn Fn() -> T + Send + Sync>;

/// A counter family: its name (without `_total`), help and where its value comes from.
type CounterOf<S> = (&'static str, &'static str, fn(&S) -> u64);

enum Tier {
    Full(Read<(usize, FreshnessStats)>),
    OnDemand(Read<(usize, CacheStats, FreshnessStats)>),
}

/// The metrics of a set of stores and watches, collected at scrape time (see the
/// [module docs](self)).
#[derive(Default)]
pub struct StoreMetrics {
    stores: Vec<(String, Tier)>,
    watches: Vec<(String, WatchStatus)>,
}

impl fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreMetrics")
            .field(
                "stores",
                &self.stores.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "watches",
                &self.watches.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl StoreMetrics {
    /// No sources yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn add_store(&mut self, name: &str, tier: Tier) -> Result<&mut Self, MetricsError> {
        if self.stores.iter().any(|(n, _)| n == name) {
            return Err(MetricsError::Duplicate {
                store: name.to_owned(),
                what: "store",
            });
        }
        self.stores.push((name.to_owned(), tier));
        Ok(self)
    }

    /// Adds a full store, read through `reader`, labelled `store="<name>"`.
    ///
    /// # Errors
    /// [`MetricsError::Duplicate`] if a store of this name was added.
    pub fn add_full<K: Send + Sync + 'static>(
        &mut self,
        name: &str,
        reader: &MemoryReader<K>,
    ) -> Result<&mut Self, MetricsError> {
        let reader = reader.clone();
        self.add_store(
            name,
            Tier::Full(Box::new(move || (reader.len(), reader.freshness()))),
        )
    }

    /// Adds an on-demand store, read through `reader`.
    ///
    /// # Errors
    /// [`MetricsError::Duplicate`] if a store of this name was added.
    pub fn add_on_demand<K, F>(
        &mut self,
        name: &str,
        reader: &CachedReader<K, F>,
    ) -> Result<&mut Self, MetricsError>
    where
        K: kube::Resource + Send + Sync + 'static,
        F: Fetch<K>,
    {
        let reader = reader.clone();
        self.add_store(
            name,
            Tier::OnDemand(Box::new(move || {
                (reader.len(), reader.stats(), reader.freshness())
            })),
        )
    }

    /// Adds the counters and readiness of a watch.
    ///
    /// # Errors
    /// [`MetricsError::Duplicate`] if a watch of this name was added.
    pub fn add_watch(
        &mut self,
        name: &str,
        status: &WatchStatus,
    ) -> Result<&mut Self, MetricsError> {
        if self.watches.iter().any(|(n, _)| n == name) {
            return Err(MetricsError::Duplicate {
                store: name.to_owned(),
                what: "watch",
            });
        }
        self.watches.push((name.to_owned(), status.clone()));
        Ok(self)
    }

    /// Adds every store of `stores` and its watch, under the configuration's names.
    ///
    /// # Errors
    /// [`MetricsError::Duplicate`] if one of the names was added already.
    pub fn add_stores(&mut self, stores: &Stores) -> Result<&mut Self, MetricsError> {
        for (name, watched) in stores.iter() {
            match &watched.store {
                AnyStore::Full(r) => self.add_full(name, r)?,
                AnyStore::OnDemand(r) => self.add_on_demand(name, r)?,
            };
            self.add_watch(name, watched.status())?;
        }
        Ok(self)
    }

    /// Registers the metrics in `registry`. Consumes the collector, so it cannot be
    /// registered twice by mistake; add every source first.
    pub fn register(self, registry: &mut Registry) {
        registry.register_collector(Box::new(self));
    }
}

/// One family: a descriptor, then one sample per source.
fn family<T>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl Iterator<Item = (String, T)>,
    mut encode: impl FnMut(MetricEncoder<'_>, T) -> fmt::Result,
) -> fmt::Result {
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (store, value) in samples {
        let labels = [("store", store.as_str())];
        encode(metric.encode_family(&labels)?, value)?;
    }
    Ok(())
}

fn counter(m: MetricEncoder<'_>, v: u64) -> fmt::Result {
    ConstCounter::new(v).encode(m)
}

fn gauge(m: MetricEncoder<'_>, v: i64) -> fmt::Result {
    ConstGauge::new(v).encode(m)
}

impl Collector for StoreMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        // Read every source once per scrape, so that one scrape is one consistent
        // reading per store.
        let mut objects: Vec<(String, usize)> = Vec::with_capacity(self.stores.len());
        let mut cached: Vec<(String, CacheStats)> = Vec::new();
        let mut fresh: Vec<(String, FreshnessStats)> = Vec::with_capacity(self.stores.len());
        for (name, tier) in &self.stores {
            match tier {
                Tier::Full(read) => {
                    let (len, freshness) = read();
                    objects.push((name.clone(), len));
                    fresh.push((name.clone(), freshness));
                }
                Tier::OnDemand(read) => {
                    let (len, stats, freshness) = read();
                    objects.push((name.clone(), len));
                    cached.push((name.clone(), stats));
                    fresh.push((name.clone(), freshness));
                }
            }
        }
        let watches: Vec<(String, WatchStats, bool)> = self
            .watches
            .iter()
            .map(|(n, s)| (n.clone(), s.stats(), s.is_ready()))
            .collect();

        let gauge_i = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        family(
            &mut encoder,
            "k8s_store_objects",
            "Objects (full tier) or references (on-demand tier) held by the store.",
            MetricType::Gauge,
            objects.into_iter(),
            |m, v| gauge(m, gauge_i(v)),
        )?;
        family(
            &mut encoder,
            "k8s_store_seconds_since_last_write",
            "Time since the store applied its last write (absent before the first).",
            MetricType::Gauge,
            fresh
                .iter()
                .filter_map(|(n, f)| Some((n.clone(), f.since_last_write?.as_secs_f64()))),
            |m, v| ConstGauge::new(v).encode(m),
        )?;
        family(
            &mut encoder,
            "k8s_store_versions_behind",
            "How far the newest resourceVersion applied is behind the newest one waited for.",
            MetricType::Gauge,
            fresh
                .iter()
                .map(|(n, f)| (n.clone(), i64::try_from(f.behind).unwrap_or(i64::MAX))),
            gauge,
        )?;
        family(
            &mut encoder,
            "k8s_store_waiting",
            "Waits for a resourceVersion pending now.",
            MetricType::Gauge,
            fresh.iter().map(|(n, f)| (n.clone(), f.waiting)),
            |m, v| gauge(m, gauge_i(v)),
        )?;
        let wait_counters: [CounterOf<FreshnessStats>; 2] = [
            (
                "k8s_store_waits",
                "Waits for a resourceVersion started.",
                |f| f.waits,
            ),
            (
                "k8s_store_wait_timeouts",
                "Waits for a resourceVersion that timed out.",
                |f| f.timeouts,
            ),
        ];
        for (name, help, get) in wait_counters {
            family(
                &mut encoder,
                name,
                help,
                MetricType::Counter,
                fresh.iter().map(|(n, f)| (n.clone(), get(f))),
                counter,
            )?;
        }
        let cache_counters: [CounterOf<CacheStats>; 8] = [
            (
                "k8s_store_cache_hits",
                "Objects served from the cache.",
                |s| s.hits,
            ),
            (
                "k8s_store_cache_misses",
                "Objects not found in the cache.",
                |s| s.misses,
            ),
            (
                "k8s_store_cache_coalesced_waits",
                "Misses that waited for another caller's fetch.",
                |s| s.coalesced,
            ),
            (
                "k8s_store_cache_fetches",
                "Fetches from the API server.",
                |s| s.fetches,
            ),
            (
                "k8s_store_cache_fetch_errors",
                "Fetches that failed.",
                |s| s.fetch_errors,
            ),
            (
                "k8s_store_cache_not_found",
                "Fetches the API server answered 404.",
                |s| s.not_found,
            ),
            (
                "k8s_store_cache_evictions",
                "Bodies evicted to make room.",
                |s| s.evictions,
            ),
            (
                "k8s_store_cache_expirations",
                "Bodies dropped for their TTL.",
                |s| s.expirations,
            ),
        ];
        for (name, help, get) in cache_counters {
            family(
                &mut encoder,
                name,
                help,
                MetricType::Counter,
                cached.iter().map(|(n, s)| (n.clone(), get(s))),
                counter,
            )?;
        }
        family(
            &mut encoder,
            "k8s_store_cache_entries",
            "Bodies resident in the cache.",
            MetricType::Gauge,
            cached.iter().map(|(n, s)| (n.clone(), s.entries)),
            |m, v| gauge(m, i64::try_from(v).unwrap_or(i64::MAX)),
        )?;
        family(
            &mut encoder,
            "k8s_store_cache_resident_bytes",
            "Response bytes of the bodies resident in the cache.",
            MetricType::Gauge,
            cached.iter().map(|(n, s)| (n.clone(), s.bytes)),
            |m, v| gauge(m, i64::try_from(v).unwrap_or(i64::MAX)),
        )?;
        family(
            &mut encoder,
            "k8s_store_cache_fetch_duration_seconds",
            "How long fetches from the API server took.",
            MetricType::Histogram,
            cached.iter().map(|(n, s)| (n.clone(), *s)),
            |mut m, s| {
                // Per-bucket counts: the encoder makes them cumulative.
                let count: u64 = s.fetch_latency.iter().sum();
                let buckets: Vec<(f64, u64)> = FETCH_LATENCY_BUCKETS
                    .iter()
                    .copied()
                    .chain([f64::INFINITY])
                    .zip(s.fetch_latency)
                    .collect();
                m.encode_histogram::<NoLabelSet>(s.fetch_time.as_secs_f64(), count, &buckets, None)
            },
        )?;
        let watch_counters: [CounterOf<WatchStats>; 9] = [
            ("k8s_store_watch_events", "Watch events handled.", |s| {
                s.events
            }),
            (
                "k8s_store_watch_applied",
                "Objects upserted by Apply events.",
                |s| s.applied,
            ),
            (
                "k8s_store_watch_unchanged",
                "Apply events skipped for an unchanged resourceVersion.",
                |s| s.unchanged,
            ),
            (
                "k8s_store_watch_deleted",
                "Objects removed by Delete events.",
                |s| s.deleted,
            ),
            (
                "k8s_store_watch_relists",
                "Complete lists swapped in.",
                |s| s.relists,
            ),
            (
                "k8s_store_watch_errors",
                "Errors reported by the watch stream.",
                |s| s.watch_errors,
            ),
            (
                "k8s_store_watch_index_errors",
                "Objects skipped because an index field was missing or invalid.",
                |s| s.index_errors,
            ),
            (
                "k8s_store_watch_store_errors",
                "Store writes that failed.",
                |s| s.store_errors,
            ),
            (
                "k8s_store_watch_stray_relist_events",
                "Relist events that came with no relist in progress.",
                |s| s.stray_relist_events,
            ),
        ];
        for (name, help, get) in watch_counters {
            family(
                &mut encoder,
                name,
                help,
                MetricType::Counter,
                watches.iter().map(|(n, s, _)| (n.clone(), get(s))),
                counter,
            )?;
        }
        family(
            &mut encoder,
            "k8s_store_watch_ready",
            "1 once the watch's first list is in and the watch is running.",
            MetricType::Gauge,
            watches
                .iter()
                .map(|(n, _, ready)| (n.clone(), i64::from(*ready))),
            gauge,
        )?;
        Ok(())
    }
}
