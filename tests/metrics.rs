//! The `metrics` feature: a scrape of the registry shows exactly what `stats()` shows.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_store::metrics::{MetricsError, StoreMetrics};
use k8s_store::watch::{self, FeedOptions};
use k8s_store::{CachedStore, FETCH_LATENCY_BUCKETS, Indexer, MemoryStore};
use k8s_store_sim::ApiServer;
use kube::Api;
use kube::runtime::watcher;
use prometheus_client::registry::Registry;

/// `name{labels} value` lines of an OpenMetrics text scrape.
fn scrape(registry: &Registry) -> BTreeMap<String, f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_what_stats_show() {
    let server = ApiServer::start().await.unwrap();
    for i in 0..3 {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.name = Some(format!("c-{i}"));
        server.create(&cm).unwrap();
        let mut s = Secret::default();
        s.metadata.namespace = Some("ns".into());
        s.metadata.name = Some(format!("s-{i}"));
        server.create(&s).unwrap();
    }
    // A full store fed by a watch.
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let configmaps = store.reader();
    let handle = watch::spawn_full(
        Api::all(server.client()),
        watcher::Config::default(),
        store,
        Indexer::new(["metadata.namespace", "metadata.name"]).unwrap(),
        FeedOptions::new("configmaps"),
    )
    .unwrap();
    handle.status().ready().await.unwrap();
    // An on-demand store with hits, misses and a 404.
    let cached = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .build()
        .unwrap();
    let secrets = cached.reader();
    for s in server.list::<Secret>().unwrap() {
        let name = s.metadata.name.clone().unwrap();
        cached.add(&s, &["ns", name.as_str()]).unwrap();
    }
    let mut gone = Secret::default();
    gone.metadata.namespace = Some("ns".into());
    gone.metadata.name = Some("gone".into());
    cached.add(&gone, &["ns", "gone"]).unwrap();
    for _ in 0..2 {
        assert_eq!(secrets.get(&["ns"]).await.unwrap().len(), 3);
    }

    let mut metrics = StoreMetrics::new();
    metrics
        .add_full("configmaps", &configmaps)
        .unwrap()
        .add_watch("configmaps", handle.status())
        .unwrap()
        .add_on_demand("secrets", &secrets)
        .unwrap();
    // The same name twice is an error, not a panic or a duplicated series.
    assert_eq!(
        metrics.add_full("configmaps", &configmaps).unwrap_err(),
        MetricsError::Duplicate {
            store: "configmaps".into(),
            what: "store"
        }
    );
    assert!(metrics.add_watch("configmaps", handle.status()).is_err());
    let mut registry = Registry::default();
    metrics.register(&mut registry);

    let got = scrape(&registry);
    let at = |series: &str| -> f64 {
        *got.get(series)
            .unwrap_or_else(|| panic!("{series} not in the scrape: {got:#?}"))
    };
    assert_eq!(at(r#"k8s_store_objects{store="configmaps"}"#), 3.0);
    assert_eq!(at(r#"k8s_store_objects{store="secrets"}"#), 4.0);
    let stats = secrets.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.fetches, stats.not_found),
        (3, 5, 5, 2)
    );
    for (series, want) in [
        ("k8s_store_cache_hits_total", stats.hits),
        ("k8s_store_cache_misses_total", stats.misses),
        ("k8s_store_cache_coalesced_waits_total", stats.coalesced),
        ("k8s_store_cache_fetches_total", stats.fetches),
        ("k8s_store_cache_fetch_errors_total", stats.fetch_errors),
        ("k8s_store_cache_not_found_total", stats.not_found),
        ("k8s_store_cache_evictions_total", stats.evictions),
        ("k8s_store_cache_expirations_total", stats.expirations),
        ("k8s_store_cache_entries", stats.entries),
        ("k8s_store_cache_resident_bytes", stats.bytes),
        (
            "k8s_store_cache_fetch_duration_seconds_count",
            stats.fetches,
        ),
    ] {
        assert_eq!(
            at(&format!(r#"{series}{{store="secrets"}}"#)),
            want as f64,
            "{series}"
        );
    }
    let sum = at(r#"k8s_store_cache_fetch_duration_seconds_sum{store="secrets"}"#);
    assert!((sum - stats.fetch_time.as_secs_f64()).abs() < 1e-9, "{sum}");
    // Cumulative buckets, the last one +Inf = the count.
    let mut cumulative = 0;
    for (le, n) in FETCH_LATENCY_BUCKETS.iter().zip(stats.fetch_latency) {
        cumulative += n;
        let series = format!(
            r#"k8s_store_cache_fetch_duration_seconds_bucket{{le="{le:?}",store="secrets"}}"#
        );
        assert_eq!(at(&series), cumulative as f64, "{series}");
    }
    let inf = r#"k8s_store_cache_fetch_duration_seconds_bucket{le="+Inf",store="secrets"}"#;
    assert_eq!(at(inf), stats.fetches as f64);
    let w = handle.status().stats();
    for (series, want) in [
        ("k8s_store_watch_events_total", w.events),
        ("k8s_store_watch_applied_total", w.applied),
        ("k8s_store_watch_relists_total", w.relists),
        ("k8s_store_watch_errors_total", w.watch_errors),
        ("k8s_store_watch_index_errors_total", w.index_errors),
        (
            "k8s_store_watch_stray_relist_events_total",
            w.stray_relist_events,
        ),
    ] {
        assert_eq!(
            at(&format!(r#"{series}{{store="configmaps"}}"#)),
            want as f64,
            "{series}"
        );
    }
    assert_eq!(at(r#"k8s_store_watch_ready{store="configmaps"}"#), 1.0);
    // Freshness: a wait for a version the store has not applied yet, timed out.
    let f = configmaps.freshness();
    let applied: u64 = f.applied.as_deref().unwrap().parse().unwrap();
    let ahead = (applied + 5).to_string();
    assert!(
        configmaps
            .wait_for_version(&ahead, Duration::ZERO)
            .await
            .is_err()
    );
    let got = scrape(&registry);
    let at = |series: &str| -> f64 {
        *got.get(series)
            .unwrap_or_else(|| panic!("{series} not in the scrape: {got:#?}"))
    };
    assert_eq!(at(r#"k8s_store_versions_behind{store="configmaps"}"#), 5.0);
    assert_eq!(at(r#"k8s_store_waits_total{store="configmaps"}"#), 1.0);
    assert_eq!(
        at(r#"k8s_store_wait_timeouts_total{store="configmaps"}"#),
        1.0
    );
    assert_eq!(at(r#"k8s_store_waiting{store="configmaps"}"#), 0.0);
    let since = at(r#"k8s_store_seconds_since_last_write{store="configmaps"}"#);
    assert!((0.0..60.0).contains(&since), "{since}");
    assert_eq!(at(r#"k8s_store_versions_behind{store="secrets"}"#), 0.0);
    // Full stores have no cache series.
    assert!(
        !got.keys()
            .any(|k| k.starts_with("k8s_store_cache") && k.contains("configmaps"))
    );

    // A later scrape follows the stores.
    server
        .create(&{
            let mut cm = ConfigMap::default();
            cm.metadata.namespace = Some("ns".into());
            cm.metadata.name = Some("c-late".into());
            cm
        })
        .unwrap();
    for _ in 0..200 {
        if configmaps.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        scrape(&registry)[r#"k8s_store_objects{store="configmaps"}"#],
        4.0
    );
}
