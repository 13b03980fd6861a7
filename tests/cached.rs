//! The on-demand tier against the in-process API server, through a real `kube::Client`
//! over HTTP on a loopback port.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_store::{CachedStore, ErrorKind, FetchError, Operation, Store, StoreError};
use k8s_store_sim::{ApiServer, Fault, Route, Verb};

fn secret(ns: &str, name: &str, value: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.namespace = Some(ns.into());
    s.metadata.name = Some(name.into());
    s.data = Some(BTreeMap::from([(
        "password".to_owned(),
        ByteString(value.as_bytes().to_vec()),
    )]));
    s
}

fn value_of(s: &Secret) -> String {
    let data = s.data.as_ref().expect("data");
    String::from_utf8(data["password"].0.clone()).expect("utf8")
}

/// A server with `n` secrets `s-000`.. in namespace `default`, and a store that has
/// their references (as a metadata watch would have delivered them).
async fn setup(
    n: usize,
    tune: impl FnOnce(k8s_store::CachedStoreBuilder<Secret>) -> k8s_store::CachedStoreBuilder<Secret>,
) -> (ApiServer, Arc<CachedStore<Secret>>) {
    let server = ApiServer::start().await.expect("server");
    let store = tune(CachedStore::<Secret>::builder(2).client(server.client()))
        .build()
        .expect("store");
    for i in 0..n {
        let name = format!("s-{i:03}");
        let created = server
            .create(&secret("default", &name, &format!("v-{i}")))
            .expect("create");
        store
            .add(&created, &["default", name.as_str()])
            .expect("add");
    }
    (server, Arc::new(store))
}

fn gets(server: &ApiServer) -> u64 {
    server.counters().requests(Verb::Get, "secrets")
}

/// A `get` of `default/s-000` on its own task.
fn spawn_get(
    store: &Arc<CachedStore<Secret>>,
) -> tokio::task::JoinHandle<Result<k8s_store::Objects<Secret>, StoreError>> {
    let store = Arc::clone(store);
    tokio::spawn(async move { store.get(&["default", "s-000"]).await })
}

/// Waits until a request is at the server (a slow fetch has started).
async fn until_in_flight(server: &ApiServer) {
    while server.counters().in_flight() == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn fetch_cause(e: &StoreError) -> &FetchError {
    assert_eq!(e.operation, Operation::Fetch, "{e}");
    match &e.kind {
        ErrorKind::Fetch { cause, .. } => cause,
        other => panic!("expected a fetch error, got {other:?}"),
    }
}

/// Every later `GET` of a Secret answers `500`.
fn fail_gets_with_500(server: &ApiServer) {
    server
        .set_fault(Route::get("secrets"), Fault::status(500))
        .unwrap();
}

/// Whether `e` is a fetch that the API server answered with `500`.
fn is_api_500(e: &StoreError) -> bool {
    matches!(fetch_cause(e), FetchError::Api { code: 500, .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_misses_make_one_get() {
    let (server, store) = setup(1, |b| b).await;
    // Slow enough that all 100 callers arrive while the first fetch is in flight.
    server
        .set_fault(
            Route::get("secrets"),
            Fault::latency(Duration::from_millis(200)),
        )
        .unwrap();
    let tasks: Vec<_> = (0..100).map(|_| spawn_get(&store)).collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().unwrap());
    }
    assert_eq!(gets(&server), 1, "one GET for 100 concurrent misses");
    let first = &results[0][0];
    assert_eq!(value_of(first), "v-0");
    assert!(
        results
            .iter()
            .all(|r| r.len() == 1 && Arc::ptr_eq(&r[0], first))
    );
    let stats = store.stats();
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.misses, 100, "{stats:?}");
    assert_eq!(stats.coalesced, 99, "{stats:?}");
    store.validate().unwrap();
    // And now it is cached.
    store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&server), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_500_reaches_every_waiter_after_one_get() {
    let (server, store) = setup(1, |b| b).await;
    server
        .set_fault(
            Route::get("secrets"),
            Fault::status(500).with_latency(Duration::from_millis(200)),
        )
        .unwrap();
    let tasks: Vec<_> = (0..100).map(|_| spawn_get(&store)).collect();
    let mut causes = Vec::new();
    for t in tasks {
        let err = t.await.unwrap().expect_err("the 500 must not be swallowed");
        assert!(is_api_500(&err), "{err}");
        assert!(err.to_string().contains("default/s-000"), "{err}");
        let ErrorKind::Fetch { cause, .. } = err.kind else {
            unreachable!("is_api_500 checked the kind")
        };
        causes.push(cause);
    }
    // One fetch, one error: every waiter holds the leader's own `Arc`, not a copy.
    assert!(causes.iter().all(|c| Arc::ptr_eq(c, &causes[0])));
    assert_eq!(gets(&server), 1);
    assert_eq!(store.stats().fetch_errors, 1);
    assert_eq!(store.stats().entries, 0, "errors are not cached");
    store.validate().unwrap();
    // Once the fault is gone, the next read fetches again and succeeds.
    server.clear_faults();
    assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1);
    assert_eq!(gets(&server), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_keeps_kubes_error_as_the_source() {
    use std::error::Error as _;
    // A port that was just free: connecting to it is refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let store = CachedStore::<Secret>::builder(2)
        .client(client)
        .build()
        .unwrap();
    store
        .add(&secret("default", "s-000", "v"), &["default", "s-000"])
        .unwrap();
    let err = store.get(&["default", "s-000"]).await.unwrap_err();
    assert!(
        matches!(fetch_cause(&err), FetchError::Transport(_)),
        "{err}"
    );
    // StoreError -> FetchError -> kube::Error -> ... -> the refused connect's io::Error.
    let fetch = err.source().expect("a fetch error has a source");
    assert!(fetch.downcast_ref::<FetchError>().is_some(), "{fetch:?}");
    let kube_error = fetch.source().expect("a transport error has a source");
    assert!(
        kube_error.downcast_ref::<kube::Error>().is_some(),
        "{kube_error:?}"
    );
    let mut chain = kube_error.source();
    let mut refused = false;
    while let Some(e) = chain {
        refused |= e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        chain = e.source();
    }
    assert!(refused, "the chain ends at the refused connect: {err}");
    // The message is complete on its own, for logs that print only the top error.
    assert!(err.to_string().contains("transport error"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_first_caller_leaves_no_one_hanging() {
    let (server, store) = setup(1, |b| b).await;
    server
        .set_fault(
            Route::get("secrets"),
            Fault::latency(Duration::from_millis(300)),
        )
        .unwrap();
    let leader = spawn_get(&store);
    // Wait until the leader's GET is at the server.
    until_in_flight(&server).await;
    let waiters: Vec<_> = (0..10).map(|_| spawn_get(&store)).collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store.stats().coalesced,
        10,
        "the others wait for the leader"
    );
    leader.abort();
    for w in waiters {
        let got = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a waiter hung after its leader was cancelled")
            .unwrap()
            .unwrap();
        assert_eq!(value_of(&got[0]), "v-0");
    }
    // The leader's request was cancelled; one waiter took over with a second GET.
    assert_eq!(gets(&server), 2);
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_racing_a_slow_fetch_serves_the_new_version() {
    let (server, store) = setup(1, |b| b).await;
    server
        .set_fault(
            Route::get("secrets"),
            Fault::latency(Duration::from_millis(300)).times(1),
        )
        .unwrap();
    let slow = spawn_get(&store);
    until_in_flight(&server).await;
    // The watch reports a new version while the fetch is in flight (the fetch reads the
    // server's copy before that copy changes, as when the event overtakes a GET).
    let next_rv = (server.resource_version() + 1).to_string();
    let mut event = secret("default", "s-000", "");
    event.metadata.uid = server
        .get::<Secret>(Some("default"), "s-000")
        .unwrap()
        .unwrap()
        .metadata
        .uid;
    event.metadata.resource_version = Some(next_rv.clone());
    store.update(&event, &["default", "s-000"]).unwrap();
    let old = slow.await.unwrap().unwrap();
    assert_eq!(
        value_of(&old[0]),
        "v-0",
        "the in-flight caller gets what it fetched"
    );
    let updated = server
        .replace(&secret("default", "s-000", "v-new"))
        .expect("replace");
    assert_eq!(
        updated.metadata.resource_version.as_deref(),
        Some(next_rv.as_str())
    );
    let fresh = store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(value_of(&fresh[0]), "v-new");
    assert_eq!(gets(&server), 2);
    // A stale body is never served after the update returned.
    for _ in 0..3 {
        assert_eq!(
            value_of(&store.get(&["default", "s-000"]).await.unwrap()[0]),
            "v-new"
        );
    }
    assert_eq!(gets(&server), 2, "the new body is cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_during_a_fetch_keeps_the_fetched_body_out_of_the_cache() {
    let (server, store) = setup(1, |b| b).await;
    server
        .set_fault(
            Route::get("secrets"),
            Fault::latency(Duration::from_millis(300)).times(1),
        )
        .unwrap();
    let slow = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.fetch("default", "s-000").await })
    };
    until_in_flight(&server).await;
    // The watch event arrives while the GET is in flight (same resourceVersion on the
    // reference, so only the in-flight invalidation can keep the body out).
    let current = server
        .get::<Secret>(Some("default"), "s-000")
        .unwrap()
        .unwrap();
    store.update(&current, &["default", "s-000"]).unwrap();
    slow.await.unwrap().unwrap().expect("found");
    assert_eq!(
        store.stats().entries,
        0,
        "a body fetched across an update is not cached"
    );
    store.fetch("default", "s-000").await.unwrap();
    assert_eq!(gets(&server), 2);
    assert_eq!(store.stats().entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_entries_never_exceed_max_entries() {
    let (server, store) = setup(500, |b| b.max_entries(50)).await;
    for i in 0..500 {
        let got = store
            .get(&["default", format!("s-{i:03}").as_str()])
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let stats = store.stats();
        assert!(
            stats.entries <= 50,
            "{} entries resident after {} reads",
            stats.entries,
            i + 1
        );
    }
    let stats = store.stats();
    assert_eq!(gets(&server), 500);
    assert!(stats.evictions >= 450, "{stats:?}");
    assert!(stats.entries > 0);
    // The byte count follows the resident entries (each body is a few hundred bytes).
    assert!(stats.bytes > 0 && stats.bytes < 50 * 2048, "{stats:?}");
    // A prefix read of everything still works, fetching what was evicted.
    assert_eq!(store.get(&["default"]).await.unwrap().len(), 500);
    assert!(store.stats().entries <= 50);
    store.validate().unwrap();
}

/// A hit takes the body straight from the reference (no second probe); the cache still
/// owns it: the bodies this crate keeps alive are exactly the resident entries, never
/// more than `max_entries`, however many references were read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_the_cache_drops_are_not_kept_alive_by_references() {
    let (server, store) = setup(40, |b| b.max_entries(4)).await;
    let mut bodies = Vec::new();
    for i in 0..40 {
        let name = format!("s-{i:03}");
        let keys = ["default", name.as_str()];
        let first = store.get(&keys).await.unwrap().into_vec().remove(0);
        // A second read is a hit on the same body (through the reference's hint).
        let again = store.get(&keys).await.unwrap().into_vec().remove(0);
        assert!(Arc::ptr_eq(&first, &again));
        bodies.push(first);
    }
    assert_eq!(gets(&server), 40, "one GET each, the second read hit");
    let stats = store.stats();
    assert_eq!(stats.hits, 40, "{stats:?}");
    let kept = bodies.iter().filter(|b| Arc::strong_count(b) > 1).count();
    assert_eq!(
        kept as u64, stats.entries,
        "bodies still held by the store = resident entries ({stats:?})"
    );
    assert!(kept <= 4, "{kept} bodies kept alive with max_entries 4");
    store.validate().unwrap();

    // `clear` releases every body.
    store.clear();
    assert!(bodies.iter().all(|b| Arc::strong_count(b) == 1));
    assert_eq!(store.stats().entries, 0);
    assert_eq!(store.stats().bytes, 0);
    store.validate().unwrap();
}

/// A relist that brings an object back unchanged keeps its cached body and its hint:
/// the next read is a hit, made without a GET; a changed object is fetched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_keeps_unchanged_bodies_cached() {
    let (server, store) = setup(2, |b| b).await;
    let a = store
        .get(&["default", "s-000"])
        .await
        .unwrap()
        .into_vec()
        .remove(0);
    store.get(&["default", "s-001"]).await.unwrap();
    assert_eq!(gets(&server), 2);
    let s0 = server
        .get::<Secret>(Some("default"), "s-000")
        .unwrap()
        .unwrap();
    let s1 = server
        .replace(&secret("default", "s-001", "v-new"))
        .unwrap();
    store
        .replace([
            (s0, vec!["default", "s-000"]),
            (s1, vec!["default", "s-001"]),
        ])
        .unwrap();
    store.validate().unwrap();
    let hits = store.stats().hits;
    let again = store
        .get(&["default", "s-000"])
        .await
        .unwrap()
        .into_vec()
        .remove(0);
    assert!(
        Arc::ptr_eq(&a, &again),
        "unchanged: the same body, from the cache"
    );
    assert_eq!(gets(&server), 2);
    assert_eq!(store.stats().hits, hits + 1);
    let changed = store
        .get(&["default", "s-001"])
        .await
        .unwrap()
        .into_vec()
        .remove(0);
    assert_eq!(value_of(&changed), "v-new");
    assert_eq!(gets(&server), 3, "changed: fetched again");
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_fetched_again() {
    let (server, store) = setup(1, |b| b.ttl(Duration::from_millis(150))).await;
    store.get(&["default", "s-000"]).await.unwrap();
    store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&server), 1, "fresh: served from the cache");
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(gets(&server), 2, "expired: fetched again");
    assert_eq!(store.stats().expirations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_are_bounded() {
    let (server, store) = setup(200, |b| b.fetch_concurrency(16).max_entries(1000)).await;
    server
        .set_fault(
            Route::get("secrets"),
            Fault::latency(Duration::from_millis(20)),
        )
        .unwrap();
    server.reset_counters();
    let all = store.get(&["default"]).await.unwrap();
    assert_eq!(all.len(), 200);
    let names: Vec<_> = all
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "results in (namespace, name) order");
    let c = server.counters();
    assert_eq!(c.requests(Verb::Get, "secrets"), 200);
    let peak = c.peak_in_flight();
    assert!((2..=16).contains(&peak), "peak in flight {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_left_out_but_a_500_fails_the_get() {
    let (server, store) = setup(3, |b| b).await;
    // The object is gone at the server; its delete event has not arrived yet.
    server.delete::<Secret>(Some("default"), "s-001").unwrap();
    let got = store.get(&["default"]).await.unwrap();
    let names: Vec<_> = got
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["s-000", "s-002"]);
    assert_eq!(store.stats().not_found, 1);
    // A 500 on one object fails the whole read, naming the object.
    fail_gets_with_500(&server);
    let err = store.get(&["default", "s-001"]).await.unwrap_err();
    assert!(is_api_500(&err), "{err}");
    assert!(err.to_string().contains("fetch"), "{err}");
    // Cached objects are still served while the server fails.
    assert_eq!(store.get(&["default", "s-000"]).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_fetches_honour_retry_after() {
    // kube clients retry 429s themselves by default; switch that off to see the
    // store's own bounded retries.
    let (server, _) = setup(2, |b| b).await;
    let mut config = server.config();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let store = CachedStore::<Secret>::builder(2)
        .client(client)
        .max_retries(2)
        .build()
        .unwrap();
    for name in ["s-000", "s-001"] {
        let s = server
            .get::<Secret>(Some("default"), name)
            .unwrap()
            .unwrap();
        store.add(&s, &["default", name]).unwrap();
    }
    server
        .set_fault(
            Route::get("secrets"),
            Fault::status(429).retry_after(1).times(2),
        )
        .unwrap();
    let started = std::time::Instant::now();
    let got = store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(gets(&server), 3, "two 429s, then success");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "waited for Retry-After twice: {:?}",
        started.elapsed()
    );
    // More 429s than retries: a Throttled error, after max_retries + 1 requests.
    server
        .set_fault(Route::get("secrets"), Fault::status(429).retry_after(0))
        .unwrap();
    let err = store.get(&["default", "s-001"]).await.unwrap_err();
    assert_eq!(fetch_cause(&err), &FetchError::Throttled { attempts: 3 });
    assert_eq!(gets(&server), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_time_out() {
    let (server, store) = setup(1, |b| b.fetch_timeout(Duration::from_millis(100))).await;
    server
        .set_fault(
            Route::get("secrets"),
            Fault::latency(Duration::from_millis(500)),
        )
        .unwrap();
    let err = store.get(&["default", "s-000"]).await.unwrap_err();
    assert_eq!(
        fetch_cause(&err),
        &FetchError::Timeout(Duration::from_millis(100))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_invalidate_and_remove() {
    let (server, store) = setup(3, |b| b).await;
    assert_eq!(store.get(&["default"]).await.unwrap().len(), 3);
    assert_eq!(store.stats().entries, 3);
    // remove: that object only; delete: the whole key.
    let s1 = server
        .get::<Secret>(Some("default"), "s-001")
        .unwrap()
        .unwrap();
    assert!(store.remove(&s1).unwrap());
    assert_eq!(store.stats().entries, 2);
    assert_eq!(store.delete(&["default", "s-002"]).unwrap(), 1);
    assert_eq!(store.stats().entries, 1);
    let names: Vec<_> = store
        .get(&["default"])
        .await
        .unwrap()
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["s-000"]);
    // A relist that changes a resourceVersion drops that body only.
    let s0 = server
        .replace(&secret("default", "s-000", "v-relisted"))
        .unwrap();
    store.replace([(s0, vec!["default", "s-000"])]).unwrap();
    assert_eq!(store.stats().entries, 0);
    let got = store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(value_of(&got[0]), "v-relisted");
    // The Store trait works the same (list fetches what is missing).
    let listed = Store::list(&*store).await.unwrap();
    assert_eq!(listed.len(), 1);
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_drops_bodies_fetched_under_names_it_adds() {
    let (server, store) = setup(1, |b| b).await;
    // Read directly, before any reference to it exists: its body is cached.
    server.create(&secret("default", "s-new", "v-1")).unwrap();
    let got = store.fetch("default", "s-new").await.unwrap().unwrap();
    assert_eq!(value_of(&got), "v-1");
    assert_eq!(store.stats().entries, 1);
    // It changes while no watch event reaches the store; the relist brings it in.
    let s_new = server.replace(&secret("default", "s-new", "v-2")).unwrap();
    let s0 = server
        .get::<Secret>(Some("default"), "s-000")
        .unwrap()
        .unwrap();
    let before = gets(&server);
    store
        .replace([
            (s0, vec!["default", "s-000"]),
            (s_new, vec!["default", "s-new"]),
        ])
        .unwrap();
    assert_eq!(store.stats().entries, 0);
    let got = store.fetch("default", "s-new").await.unwrap().unwrap();
    assert_eq!(value_of(&got), "v-2");
    assert_eq!(gets(&server), before + 1);
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_bodies_never_appear_in_debug_output() {
    let (server, store) = setup(1, |b| b).await;
    let got = store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(value_of(&got[0]), "v-0");
    fail_gets_with_500(&server);
    store.clear();
    let created = server
        .create(&secret("default", "t", "hunter2-secret"))
        .unwrap();
    store.add(&created, &["default", "t"]).unwrap();
    let err = store.get(&["default", "t"]).await.unwrap_err();
    let rendered = format!("{store:?} {err} {err:?} {:?}", store.stats());
    assert!(!rendered.contains("hunter2"), "{rendered}");
    assert!(!rendered.contains("v-0"), "{rendered}");
}

#[tokio::test]
async fn invalid_settings_are_build_errors() {
    let server = ApiServer::start().await.unwrap();
    let b = || CachedStore::<Secret>::builder(2).client(server.client());
    let cases: Vec<(Result<CachedStore<Secret>, StoreError>, &str)> = vec![
        (b().ttl(Duration::ZERO).build(), "ttl"),
        (b().max_entries(0).build(), "max_entries"),
        (b().max_bytes(0).build(), "max_bytes"),
        (b().fetch_concurrency(0).build(), "fetch_concurrency"),
        (b().fetch_timeout(Duration::ZERO).build(), "fetch_timeout"),
        (b().namespace("").build(), "namespace"),
        (CachedStore::<Secret>::builder(2).build(), "client"),
        (
            CachedStore::<Secret>::builder(0)
                .client(server.client())
                .build(),
            "num_keys",
        ),
        // These used to panic (tokio's semaphore, "capacity overflow") or abort the
        // process on an allocation.
        (
            b().fetch_concurrency(usize::MAX).build(),
            "fetch_concurrency = 18446744073709551615: must be at most",
        ),
        (
            CachedStore::<Secret>::builder(usize::MAX)
                .client(server.client())
                .build(),
            "at most 64 key components, got num_keys = 18446744073709551615",
        ),
        (
            CachedStore::<Secret>::builder(1 << 40)
                .client(server.client())
                .build(),
            "num_keys = 1099511627776",
        ),
        (b().shards(1 << 40).build(), "shards = 1099511627776"),
    ];
    for (result, setting) in cases {
        let err = result.expect_err(setting);
        assert_eq!(err.operation, Operation::Build);
        assert!(err.to_string().contains(setting), "{setting}: {err}");
    }
    // The largest settings that are allowed build.
    let _ = b()
        .fetch_concurrency(tokio::sync::Semaphore::MAX_PERMITS)
        .shards(k8s_store::MAX_SHARDS)
        .build()
        .unwrap();
    let _ = CachedStore::<Secret>::builder(k8s_store::MAX_KEYS)
        .client(server.client())
        .build()
        .unwrap();
    // Out-of-scope objects are refused and change nothing.
    let store = b().namespace("team-a").build().unwrap();
    let err = store
        .add(&secret("team-b", "x", "y"), &["team-b", "x"])
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::OutOfScope { .. }), "{err}");
    assert!(store.is_empty());
    // Wrong key counts, as in the full tier.
    assert!(store.add(&secret("team-a", "x", "y"), &["team-a"]).is_err());
    assert!(store.get(&["a", "b", "c"]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_bodies_are_stripped_before_caching() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    let server = ApiServer::start().await.unwrap();
    let mut s = secret("default", "x", "v");
    s.metadata.annotations = Some(BTreeMap::from([
        ("drop-me".to_owned(), "big".to_owned()),
        ("keep".to_owned(), "1".to_owned()),
    ]));
    s.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some("kubectl".into()),
        ..ManagedFieldsEntry::default()
    }]);
    let created = server.create(&s).unwrap();
    assert!(
        server
            .get::<Secret>(Some("default"), "x")
            .unwrap()
            .unwrap()
            .metadata
            .managed_fields
            .is_some(),
        "the server keeps managedFields, so the test can see them stripped"
    );
    let store = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .strip(Arc::new(|s: &mut Secret| {
            if let Some(a) = s.metadata.annotations.as_mut() {
                a.remove("drop-me");
            }
        }))
        .build()
        .unwrap();
    store.add(&created, &["default", "x"]).unwrap();
    let got = store.get(&["default", "x"]).await.unwrap();
    assert!(got[0].metadata.managed_fields.is_none());
    let annotations = got[0].metadata.annotations.as_ref().unwrap();
    assert!(!annotations.contains_key("drop-me"));
    assert_eq!(annotations["keep"], "1");
}

/// The hit path under keys that are not the object's namespace and name (a stored key
/// with one member) and under a key that several objects share: hits make no GET, and
/// a hit is only ever of the version the index last recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_under_any_key_serve_only_the_recorded_version() {
    let (server, store) = setup(0, |b| b).await;
    let a = server.create(&secret("default", "a", "v-a")).unwrap();
    let b = server.create(&secret("default", "b", "v-b")).unwrap();
    let c = server.create(&secret("default", "c", "v-c")).unwrap();
    store.add(&a, &["team/x", "α"]).unwrap();
    store.add(&b, &["team", "x/α"]).unwrap();
    store.add(&c, &["team", "x/α"]).unwrap();

    let value = |v: &[Arc<Secret>]| v.iter().map(|s| value_of(s)).collect::<Vec<_>>();
    assert_eq!(value(&store.get(&["team/x", "α"]).await.unwrap()), ["v-a"]);
    assert_eq!(
        value(&store.get(&["team", "x/α"]).await.unwrap()),
        ["v-b", "v-c"]
    );
    assert_eq!(gets(&server), 3);
    for _ in 0..3 {
        assert_eq!(value(&store.get(&["team/x", "α"]).await.unwrap()), ["v-a"]);
        assert_eq!(store.get(&["team", "x/α"]).await.unwrap().len(), 2);
    }
    assert_eq!(gets(&server), 3, "hits make no GET");
    assert_eq!(store.stats().hits, 9);

    // The server changes `a`; until the watch reports it, the cached body is served.
    let a2 = server.replace(&secret("default", "a", "v-a2")).unwrap();
    assert_eq!(value(&store.get(&["team/x", "α"]).await.unwrap()), ["v-a"]);
    // Once the index records the new resourceVersion, the old body is never a hit,
    // even if it were still in the cache.
    store.update(&a2, &["team/x", "α"]).unwrap();
    assert_eq!(value(&store.get(&["team/x", "α"]).await.unwrap()), ["v-a2"]);
    assert_eq!(gets(&server), 4);
    assert_eq!(value(&store.get(&["team/x", "α"]).await.unwrap()), ["v-a2"]);
    assert_eq!(gets(&server), 4);
    store.validate().unwrap();
}

/// `get_one` through the cache: one GET on a miss, none on a hit, `None` for an
/// object the server no longer has, the fetch error on a 500, and the index's errors
/// for a shared key or a wrong key count. Also through the `Store` trait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_one_fetches_once_and_reports_why_not() {
    let (server, store) = setup(3, |b| b).await;
    // The first read misses (one GET); the second is a hit (no more).
    for read in ["miss", "hit"] {
        let a = store
            .get_one(&["default", "s-000"])
            .await
            .unwrap()
            .expect("present");
        assert_eq!(value_of(&a), "v-0");
        assert_eq!(gets(&server), 1, "after the {read}");
    }
    assert_eq!((store.stats().hits, store.stats().misses), (1, 1));

    // Through the trait, as a watcher-fed consumer would call it.
    let via_trait = Store::get_one(&*store, &["default", "s-000"])
        .await
        .unwrap();
    assert!(via_trait.is_some_and(|s| value_of(&s) == "v-0"));

    assert!(store.get_one(&["default", "nope"]).await.unwrap().is_none());
    server.delete::<Secret>(Some("default"), "s-001").unwrap();
    assert!(
        store
            .get_one(&["default", "s-001"])
            .await
            .unwrap()
            .is_none()
    );

    // Two references under one key.
    let other = server.create(&secret("other", "x", "v-x")).expect("create");
    store.add(&other, &["shared", "k"]).unwrap();
    let third = server.create(&secret("other", "y", "v-y")).expect("create");
    store.add(&third, &["shared", "k"]).unwrap();
    let before = gets(&server);
    let err = store.get_one(&["shared", "k"]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotUnique { found: 2 });
    assert_eq!(gets(&server), before, "no fetch for a shared key");
    let err = store.get_one(&["default"]).await.unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::KeyCount {
            expected: 2,
            given: 1
        }
    );

    fail_gets_with_500(&server);
    let err = store.get_one(&["default", "s-002"]).await.unwrap_err();
    assert!(is_api_500(&err), "{err}");
    // The cached object is still served while the server fails.
    assert!(
        store
            .get_one(&["default", "s-000"])
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_only_ever_names_itself() {
    let (server, store) = setup(1, |b| b).await; // default/s-000, "v-0"
    // A name the API server accepts (the simulated one checks names as every registry
    // does at least) made of characters that mean something in a URL.
    server
        .create(&secret("default", "s-000?x=1#frag", "odd"))
        .unwrap();
    // Each of these used to fetch, and cache, the body of default/s-000.
    for name in [
        "s-000?x=1",
        "s-000?",
        "s-000#frag",
        "s-000 ",
        "s-000;x",
        "s-000&x=1",
        "s-000\u{e9}",
    ] {
        assert!(
            store.fetch("default", name).await.unwrap().is_none(),
            "{name:?} named another object"
        );
    }
    assert_eq!(gets(&server), 7, "each was sent, as a name of its own");
    assert_eq!(store.stats().entries, 0, "nothing was cached");
    let odd = store
        .fetch("default", "s-000?x=1#frag")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&odd), "odd");

    // What cannot name an object is refused before any request.
    let before = gets(&server);
    let long = "a".repeat(64);
    for (namespace, name, field) in [
        ("default", "s-000/", "name"),
        ("default", "x/../s-000", "name"),
        ("default", "%73-000", "name"),
        ("default", "", "name"),
        ("default", ".", "name"),
        ("default", "..", "name"),
        ("default/secrets/s-000?", "x", "namespace"),
        ("default/secrets", "s-000", "namespace"),
        ("Default", "s-000", "namespace"),
        ("-default", "s-000", "namespace"),
        ("default-", "s-000", "namespace"),
        ("d\u{e9}faut", "s-000", "namespace"),
        ("default?", "s-000", "namespace"),
        (long.as_str(), "s-000", "namespace"),
    ] {
        let err = store.fetch(namespace, name).await.unwrap_err();
        match fetch_cause(&err) {
            FetchError::InvalidName {
                field: f, value, ..
            } => {
                assert_eq!(*f, field, "{namespace:?} {name:?}: {err}");
                assert_eq!(value, if field == "name" { name } else { namespace });
            }
            other => panic!("{namespace:?} {name:?}: {other:?}"),
        }
    }
    assert_eq!(gets(&server), before, "no request was made");

    // The same through references that `get` reads.
    store
        .add(&secret("default", "s-000?", "-"), &["refs", "query"])
        .unwrap();
    store
        .add(&secret("default", "s-000/", "-"), &["refs", "slash"])
        .unwrap();
    assert!(
        store.get(&["refs", "query"]).await.unwrap().is_empty(),
        "404: left out"
    );
    let err = store.get(&["refs", "slash"]).await.unwrap_err();
    assert!(
        matches!(
            fetch_cause(&err),
            FetchError::InvalidName { field: "name", .. }
        ),
        "{err}"
    );
    let own = store.get(&["default", "s-000"]).await.unwrap();
    assert_eq!(value_of(&own[0]), "v-0");
    assert_eq!(
        store.stats().entries,
        2,
        "s-000?x=1#frag and s-000, each its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_another_object_is_an_error_and_never_cached() {
    let (server, store) = setup(2, |b| b).await;
    // A misrouting server answers every get with default/s-000.
    server
        .set_fault(
            Route::get("secrets"),
            Fault::substitute(Some("default"), "s-000"),
        )
        .unwrap();
    let wrong = |e: &StoreError| match fetch_cause(e) {
        FetchError::WrongObject { asked, got } => {
            assert_eq!(
                (asked.as_str(), got.as_str()),
                ("default/s-001", "default/s-000")
            );
        }
        other => panic!("expected WrongObject, got {other:?}"),
    };
    wrong(&store.get(&["default", "s-001"]).await.unwrap_err());
    wrong(&store.fetch("default", "s-001").await.unwrap_err());
    wrong(&store.get_one(&["default", "s-001"]).await.unwrap_err());
    assert_eq!(store.stats().entries, 0, "the wrong body was not cached");
    assert_eq!(store.stats().fetch_errors, 3);
    server.clear_faults();
    let before = gets(&server);
    let got = store.get(&["default", "s-001"]).await.unwrap();
    assert_eq!(value_of(&got[0]), "v-1");
    assert_eq!(
        gets(&server),
        before + 1,
        "fetched, not served from the cache"
    );
}

#[tokio::test]
async fn references_compare_by_what_they_name_whatever_store_they_come_from() {
    let server = ApiServer::start().await.unwrap();
    let build = || {
        CachedStore::<Secret>::builder(2)
            .client(server.client())
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    let mut s = secret("ns", "x", "v");
    s.metadata.resource_version = Some("7".into());
    a.add(&s, &["ns", "x"]).unwrap();
    b.add(&s, &["ns", "x"]).unwrap();
    let (ra, rb) = (
        a.references(&["ns", "x"]).unwrap(),
        b.references(&["ns", "x"]).unwrap(),
    );
    // The stores hash cache keys with different random seeds; that used to make
    // these unequal.
    assert_eq!(*ra[0], *rb[0]);
    assert_eq!(*ra[0], k8s_store::Reference::new("ns", "x", "", Some("7")));
    assert_ne!(*ra[0], k8s_store::Reference::new("ns", "x", "", Some("8")));
    assert_ne!(*ra[0], k8s_store::Reference::new("ns", "y", "", Some("7")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_get_an_error_when_the_shared_fetch_panics() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let panicking = Arc::new(AtomicBool::new(true));
    let (server, store) = setup(1, |b| {
        let panicking = Arc::clone(&panicking);
        // User code inside the leader's fetch: the first body fetched panics.
        b.strip(Arc::new(move |_: &mut Secret| {
            if panicking.swap(false, Ordering::SeqCst) {
                panic!("a stripper that panics");
            }
        }))
    })
    .await;
    server
        .set_fault(
            Route::get("secrets"),
            Fault::latency(Duration::from_millis(200)),
        )
        .unwrap();
    let leader = spawn_get(&store);
    until_in_flight(&server).await;
    let waiters: Vec<_> = (0..5).map(|_| spawn_get(&store)).collect();
    tokio::time::sleep(Duration::from_millis(50)).await; // all five are waiting
    assert!(
        leader.await.unwrap_err().is_panic(),
        "the panic reached the leader"
    );
    for w in waiters {
        let err = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("no waiter is left waiting")
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(fetch_cause(&err), FetchError::LeaderPanicked),
            "{err}"
        );
    }
    assert_eq!(gets(&server), 1, "the waiters did not fetch again");
    assert_eq!(store.stats().entries, 0, "nothing was cached");
    // The next read fetches as usual.
    assert_eq!(
        value_of(&store.get(&["default", "s-000"]).await.unwrap()[0]),
        "v-0"
    );
}
