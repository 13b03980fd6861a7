//! Waiting for the controller's own writes: every outcome of a wait on both tiers, and
//! the stale-read window shown open without the wait and closed with it, against the
//! in-process API server with delayed watch delivery.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_store::watch::{self, FeedOptions};
use k8s_store::{CachedStore, Indexer, MemoryStore, WaitError, WriterDropped};
use k8s_store_sim::{ApiServer, Fault, Route};
use kube::Api;
use kube::api::PostParams;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

fn cm(name: &str, uid: &str, rv: &str) -> Arc<ConfigMap> {
    let mut c = ConfigMap::default();
    c.metadata.namespace = Some("ns".into());
    c.metadata.name = Some(name.into());
    c.metadata.uid = Some(uid.into());
    c.metadata.resource_version = Some(rv.into());
    Arc::new(c)
}

fn keys(name: &str) -> [&str; 2] {
    ["ns", name]
}

/// A long timeout for waits that must end some other way.
const LONG: Duration = Duration::from_secs(30);

fn timed_out(r: Result<(), WaitError>) -> bool {
    matches!(r, Err(WaitError::Timeout { .. }))
}

#[tokio::test]
async fn a_wait_already_satisfied_answers_at_once_even_with_a_zero_timeout() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    store.add(cm("a", "ua", "10"), &keys("a")).unwrap();
    for timeout in [Duration::ZERO, LONG] {
        let start = Instant::now();
        reader.wait_for_version("10", timeout).await.unwrap();
        reader.wait_for_version("9", timeout).await.unwrap();
        reader
            .wait_for_object(&cm("a", "ua", "10"), timeout)
            .await
            .unwrap();
        reader
            .wait_for_object(&cm("a", "ua", "3"), timeout)
            .await
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    let f = reader.freshness();
    assert_eq!(f.applied.as_deref(), Some("10"));
    assert_eq!((f.written.as_deref(), f.behind), (Some("10"), 0));
    assert_eq!((f.waits, f.timeouts, f.waiting), (8, 0, 0));
}

#[tokio::test]
async fn a_zero_timeout_that_is_not_satisfied_is_a_timeout_at_once() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    store.add(cm("a", "ua", "10"), &keys("a")).unwrap();
    let start = Instant::now();
    match store.wait_for_version("11", Duration::ZERO).await {
        Err(WaitError::Timeout {
            version,
            applied,
            waited,
        }) => {
            assert_eq!((version.as_str(), applied.as_deref()), ("11", Some("10")));
            assert_eq!(waited, Duration::ZERO);
        }
        other => panic!("{other:?}"),
    }
    assert!(timed_out(
        store
            .wait_for_object(&cm("a", "ua", "11"), Duration::ZERO)
            .await
    ));
    assert!(start.elapsed() < Duration::from_millis(100));
    let f = store.freshness();
    assert_eq!(
        (f.timeouts, f.behind, f.written.as_deref()),
        (2, 1, Some("11"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_satisfied_by_a_later_write_and_not_before() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    store.add(cm("a", "ua", "10"), &keys("a")).unwrap();
    let by_version = tokio::spawn({
        let r = reader.clone();
        async move { r.wait_for_version("12", LONG).await }
    });
    let by_object = tokio::spawn({
        let r = reader.clone();
        async move { r.wait_for_object(&cm("a", "ua", "12"), LONG).await }
    });
    // A write that satisfies neither: another object's, at an older version.
    store.add(cm("b", "ub", "11"), &keys("b")).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!by_version.is_finished() && !by_object.is_finished());
    assert_eq!(reader.freshness().waiting, 2);
    store.update(cm("a", "ua", "12"), &keys("a")).unwrap();
    by_version.await.unwrap().unwrap();
    by_object.await.unwrap().unwrap();
    assert_eq!(reader.freshness().waiting, 0, "waiters deregister");
}

#[tokio::test]
async fn a_wait_times_out_and_names_what_the_store_has() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    store.add(cm("a", "ua", "10"), &keys("a")).unwrap();
    let start = Instant::now();
    let e = store
        .wait_for_version("20", Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        e.to_string(),
        "timed out after 50ms waiting for resourceVersion \"20\"; the store has applied 10"
    );
    let f = store.freshness();
    assert_eq!((f.timeouts, f.waiting, f.behind), (1, 0, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_writer_ends_every_wait_at_once() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    store.add(cm("a", "ua", "10"), &keys("a")).unwrap();
    store.mark_ready();
    let waiting = tokio::spawn({
        let r = reader.clone();
        async move { r.wait_for_version("11", LONG).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let start = Instant::now();
    drop(store);
    let stopped = |r: Result<(), WaitError>| match r {
        Err(WaitError::WriterDropped(WriterDropped { was_ready, .. })) => was_ready,
        other => panic!("{other:?}"),
    };
    assert!(stopped(waiting.await.unwrap()));
    // Later waits too, at once; one the last state satisfies still succeeds.
    assert!(stopped(reader.wait_for_version("11", LONG).await));
    assert!(stopped(
        reader.wait_for_object(&cm("a", "ua", "11"), LONG).await
    ));
    reader.wait_for_version("10", LONG).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_in_between_satisfies_waits_for_what_it_brings() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    store.add(cm("a", "ua", "10"), &keys("a")).unwrap();
    store.add(cm("b", "ub", "11"), &keys("b")).unwrap();
    let a_updated = tokio::spawn({
        let r = reader.clone();
        async move { r.wait_for_object(&cm("a", "ua", "15"), LONG).await }
    });
    let b_deleted = tokio::spawn({
        let r = reader.clone();
        async move { r.wait_for_object(&cm("b", "ub", "11"), LONG).await }
    });
    // `b`'s own version is in the store: that wait is satisfied at once.
    b_deleted.await.unwrap().unwrap();
    // The relist has `a` at 16 and no `b` (deleted while the watch was down).
    let b_gone = tokio::spawn({
        let r = reader.clone();
        async move { r.wait_for_object(&cm("b", "ub", "14"), LONG).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!a_updated.is_finished() && !b_gone.is_finished());
    store
        .replace(vec![(cm("a", "ua", "16"), vec!["ns", "a"])])
        .unwrap();
    a_updated.await.unwrap().unwrap();
    b_gone.await.unwrap().unwrap();
    assert_eq!(reader.freshness().applied.as_deref(), Some("16"));
    // A relist never takes the store's version back: its objects may all be older.
    store
        .replace(vec![(cm("c", "uc", "3"), vec!["ns", "c"])])
        .unwrap();
    assert_eq!(reader.freshness().applied.as_deref(), Some("16"));
    reader.wait_for_version("16", Duration::ZERO).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_is_waited_for_by_identity_and_gone_means_deleted_after_it() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    store.add(cm("other", "uo", "5"), &keys("other")).unwrap();
    // Created by the controller at 7; its ADDED event has not arrived: absent, and
    // the store is behind 7, so that is not "gone".
    let created = cm("new", "un", "7");
    assert!(timed_out(
        reader.wait_for_object(&created, Duration::ZERO).await
    ));
    // A recreated object (another uid) at a newer version is another object.
    store.add(cm("new", "un-2", "8"), &keys("new")).unwrap();
    // The store is at 8 and `un` absent: deleted after 7.
    reader
        .wait_for_object(&created, Duration::ZERO)
        .await
        .unwrap();
    // Deleted by a watch event after being seen.
    store.add(cm("d", "ud", "9"), &keys("d")).unwrap();
    let deleted = tokio::spawn({
        let r = reader.clone();
        async move { r.wait_for_object(&cm("d", "ud", "10"), LONG).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!deleted.is_finished());
    store.remove(&cm("d", "ud", "10")).unwrap();
    deleted.await.unwrap().unwrap();
    assert_eq!(reader.freshness().applied.as_deref(), Some("10"));
}

#[tokio::test]
async fn non_numeric_versions_compare_by_equality() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    store.add(cm("a", "ua", "v-abc"), &keys("a")).unwrap();
    store
        .wait_for_version("v-abc", Duration::ZERO)
        .await
        .unwrap();
    store
        .wait_for_object(&cm("a", "ua", "v-abc"), Duration::ZERO)
        .await
        .unwrap();
    for other in ["v-abb", "v-abd", "5"] {
        assert!(timed_out(
            store.wait_for_version(other, Duration::ZERO).await
        ));
        assert!(timed_out(
            store
                .wait_for_object(&cm("a", "ua", other), Duration::ZERO)
                .await
        ));
    }
    // Leading zeros make a version opaque: "010" is not 10.
    store.add(cm("b", "ub", "10"), &keys("b")).unwrap();
    assert!(timed_out(
        store.wait_for_version("010", Duration::ZERO).await
    ));
    store.wait_for_version("10", Duration::ZERO).await.unwrap();
    assert!(
        timed_out(store.wait_for_version("v-abc", Duration::ZERO).await),
        "the newest version is 10 now"
    );
}

#[tokio::test]
async fn versions_no_write_returns_are_refused_clearly() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    for bad in ["", "0", " 5", "5\t", "é"] {
        match store.wait_for_version(bad, LONG).await {
            Err(WaitError::InvalidVersion { version, reason }) => {
                assert_eq!(version, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let mut unversioned = (*cm("a", "ua", "1")).clone();
    unversioned.metadata.resource_version = None;
    let e = store.wait_for_object(&unversioned, LONG).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("not a resourceVersion: \"\": it is empty"),
        "{e}"
    );
    assert_eq!(store.freshness().waits, 0, "refused before counting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_wait_leaves_no_waiter_behind() {
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    let wait = tokio::spawn({
        let r = reader.clone();
        async move { r.wait_for_version("5", LONG).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(reader.freshness().waiting, 1);
    wait.abort();
    let _ = wait.await;
    assert_eq!(reader.freshness().waiting, 0);
}

fn labelled(name: &str, value: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.namespace = Some("ns".into());
    c.metadata.name = Some(name.into());
    c.data = Some(BTreeMap::from([("v".to_owned(), value.to_owned())]));
    c
}

/// The window: with watch delivery delayed by the API server, a read right after the
/// controller's write is stale in some trials; after `wait_for_object` it never is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_after_a_write_are_stale_without_the_wait_and_fresh_with_it() {
    let server = ApiServer::start().await.unwrap();
    server
        .set_fault(
            Route::watch("configmaps"),
            Fault::delay_watch_events(Duration::from_millis(2)),
        )
        .unwrap();
    for i in 0..10 {
        server.create(&labelled(&format!("cm-{i}"), "0")).unwrap();
    }
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    let handle = watch::spawn_full(
        Api::all(server.client()),
        watcher::Config::default(),
        store,
        Indexer::new(["metadata.namespace", "metadata.name"]).unwrap(),
        FeedOptions::new("configmaps"),
    )
    .unwrap();
    handle.status().ready().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "ns");
    let mut last: Vec<ConfigMap> = (0..10)
        .map(|i| server.get(Some("ns"), &format!("cm-{i}")).unwrap().unwrap())
        .collect();
    let (mut stale_before, mut stale_after) = (0, 0);
    const TRIALS: usize = 1_000;
    for trial in 0..TRIALS {
        let i = trial % last.len();
        let name = format!("cm-{i}");
        let mut next = last[i].clone();
        next.data = Some(BTreeMap::from([("v".to_owned(), trial.to_string())]));
        let written = api
            .replace(&name, &PostParams::default(), &next)
            .await
            .unwrap();
        let value = |c: Option<Arc<ConfigMap>>| c.and_then(|c| c.data.clone()?.remove("v"));
        let fresh = |c| value(c).as_deref() == Some(trial.to_string().as_str());
        if !fresh(reader.get_one(&keys(&name)).unwrap()) {
            stale_before += 1;
        }
        reader
            .wait_for_object(&written, Duration::from_secs(10))
            .await
            .unwrap();
        if !fresh(reader.get_one(&keys(&name)).unwrap()) {
            stale_after += 1;
        }
        last[i] = written;
    }
    assert_eq!(stale_after, 0, "a read after the wait was stale");
    assert!(
        stale_before > 0,
        "no read was stale without the wait: the window was not shown"
    );
    eprintln!("stale reads: {stale_before}/{TRIALS} without the wait, 0 with it");
    // The store-level wait: the newest write's version.
    let newest = last
        .iter()
        .filter_map(|c| c.metadata.resource_version.clone());
    let newest = newest.max_by_key(|v| v.parse::<u64>().unwrap()).unwrap();
    reader
        .wait_for_version(&newest, Duration::from_secs(10))
        .await
        .unwrap();
    let f = reader.freshness();
    assert_eq!((f.behind, f.timeouts), (0, 0));
    // A stopped watch ends a wait at once.
    drop(handle);
    let start = Instant::now();
    let next = (newest.parse::<u64>().unwrap() + 1_000).to_string();
    assert!(matches!(
        reader.wait_for_version(&next, LONG).await,
        Err(WaitError::WriterDropped(_))
    ));
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// The on-demand tier: after the wait, the body read is the written one, never one
/// cached before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_reads_after_the_wait_fetch_the_written_body() {
    let server = ApiServer::start().await.unwrap();
    server
        .set_fault(
            Route::watch("secrets"),
            Fault::delay_watch_events(Duration::from_millis(2)),
        )
        .unwrap();
    let mut s = Secret::default();
    s.metadata.namespace = Some("ns".into());
    s.metadata.name = Some("s".into());
    s.string_data = Some(BTreeMap::from([("v".to_owned(), "0".to_owned())]));
    let mut last = server.create(&s).unwrap();
    let store = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .build()
        .unwrap();
    let reader = store.reader();
    let handle = watch::spawn_on_demand(
        Api::<PartialObjectMeta<Secret>>::all(server.client()),
        watcher::Config::default(),
        store,
        Indexer::new(["metadata.namespace", "metadata.name"]).unwrap(),
        FeedOptions::new("secrets"),
    )
    .unwrap();
    handle.status().ready().await.unwrap();
    let api: Api<Secret> = Api::namespaced(server.client(), "ns");
    for trial in 1..=100 {
        // Cache the current body, then write a new one.
        let cached = reader.get_one(&keys("s")).await.unwrap().unwrap();
        assert_eq!(
            cached.metadata.resource_version,
            last.metadata.resource_version
        );
        let mut next = last.clone();
        next.data = None;
        next.string_data = Some(BTreeMap::from([("v".to_owned(), trial.to_string())]));
        let written = api
            .replace("s", &PostParams::default(), &next)
            .await
            .unwrap();
        reader
            .wait_for_object(&written, Duration::from_secs(10))
            .await
            .unwrap();
        let got = reader.get_one(&keys("s")).await.unwrap().unwrap();
        assert_eq!(
            got.metadata.resource_version, written.metadata.resource_version,
            "trial {trial}: the body read after the wait"
        );
        last = written;
    }
    assert_eq!(reader.freshness().timeouts, 0);
}
