//! Stores fed by kube-runtime watches from the in-process API server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_store::config::Config;
use k8s_store::stores::{AnyStore, Stores};
use k8s_store::watch::{self, FeedOptions, WatchStatus};
use k8s_store::{CachedStore, Indexer, MemoryReader, MemoryStore, WriterDropped};
use k8s_store_sim::{ApiServer, Fault, Route};
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

fn cm(ns: &str, name: &str, team: &str) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.namespace = Some(ns.into());
    c.metadata.name = Some(name.into());
    c.metadata.labels = Some(BTreeMap::from([("team".to_owned(), team.to_owned())]));
    c.data = Some(BTreeMap::from([("k".to_owned(), format!("{ns}/{name}"))]));
    c
}

/// (namespace, name) of everything in a store, sorted.
fn names(objs: impl IntoIterator<Item = Arc<ConfigMap>>) -> Vec<(String, String)> {
    let mut v: Vec<_> = objs
        .into_iter()
        .map(|o| {
            (
                o.metadata.namespace.clone().unwrap_or_default(),
                o.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

fn server_names(server: &ApiServer) -> Vec<(String, String)> {
    names(
        server
            .list::<ConfigMap>()
            .unwrap()
            .into_iter()
            .map(Arc::new),
    )
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A full store of ConfigMaps indexed by (namespace, labels['team']): its writer goes
/// to the watch, the test reads through a reader.
fn full_watch(server: &ApiServer) -> (MemoryReader<ConfigMap>, watch::WatchHandle) {
    let indexer = Indexer::new(["metadata.namespace", "metadata.labels['team']"]).unwrap();
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    let handle = watch::spawn_full(
        Api::all(server.client()),
        watcher::Config::default(),
        store,
        indexer,
        FeedOptions::new("configmaps"),
    )
    .unwrap();
    (reader, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_equals_the_seeded_objects_and_follows_changes() {
    let server = ApiServer::start().await.unwrap();
    for i in 0..300 {
        server
            .create(&cm(
                &format!("ns-{}", i % 7),
                &format!("cm-{i}"),
                ["a", "b"][i % 2],
            ))
            .unwrap();
    }
    let (store, handle) = full_watch(&server);
    let status = handle.status().clone();
    tokio::time::timeout(Duration::from_secs(20), status.ready())
        .await
        .expect("ready")
        .unwrap();
    assert_eq!(names(store.list().iter().cloned()), server_names(&server));
    assert_eq!(store.len(), 300);
    assert_eq!(status.stats().relists, 1);
    // managedFields never enter the store.
    assert!(
        store
            .list()
            .iter()
            .all(|o| o.metadata.managed_fields.is_none())
    );

    // Create.
    server.create(&cm("ns-0", "new", "a")).unwrap();
    until("create", || {
        !store
            .get(&["ns-0", "a"])
            .unwrap()
            .iter()
            .all(|o| o.metadata.name.as_deref() != Some("new"))
    })
    .await;
    // Update with a key change: the object moves, nothing stays behind.
    server.replace(&cm("ns-0", "new", "b")).unwrap();
    until("move", || {
        store
            .get(&["ns-0", "b"])
            .unwrap()
            .iter()
            .any(|o| o.metadata.name.as_deref() == Some("new"))
    })
    .await;
    assert!(
        store
            .get(&["ns-0", "a"])
            .unwrap()
            .iter()
            .all(|o| o.metadata.name.as_deref() != Some("new")),
        "the old key still holds the moved object"
    );
    // Delete: that object only; its siblings under the same key stay.
    let siblings = store.get(&["ns-0", "b"]).unwrap().len();
    server.delete::<ConfigMap>(Some("ns-0"), "new").unwrap();
    until("delete", || {
        store.get(&["ns-0", "b"]).unwrap().len() == siblings - 1
    })
    .await;
    assert_eq!(names(store.list().iter().cloned()), server_names(&server));
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_after_410_leaves_no_phantoms() {
    let server = ApiServer::start().await.unwrap();
    for i in 0..50 {
        server.create(&cm("ns", &format!("cm-{i}"), "a")).unwrap();
    }
    let (store, handle) = full_watch(&server);
    handle.status().ready().await.unwrap();
    let relists_before = handle.status().stats().relists;
    // The watch goes down; meanwhile objects are deleted and created, and the history
    // is compacted so that resuming is impossible (410): the watcher must relist.
    server
        .set_fault(
            Route::watch("configmaps"),
            Fault::latency(Duration::from_millis(500)).times(1),
        )
        .unwrap();
    server.drop_watches();
    for i in 0..20 {
        server
            .delete::<ConfigMap>(Some("ns"), &format!("cm-{i}"))
            .unwrap();
    }
    server.create(&cm("ns", "born-while-down", "a")).unwrap();
    server.compact();
    until("relist", || {
        handle.status().stats().relists > relists_before
    })
    .await;
    until("converged", || {
        names(store.list().iter().cloned()) == server_names(&server)
    })
    .await;
    assert_eq!(store.len(), 31);
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_half_filled_store_during_a_relist() {
    let server = ApiServer::start().await.unwrap();
    for i in 0..2000 {
        server
            .create(&cm("ns", &format!("cm-{i:04}"), "a"))
            .unwrap();
    }
    let (store, handle) = full_watch(&server);
    handle.status().ready().await.unwrap();
    let status = handle.status().clone();
    let reader = {
        let store = store.clone();
        let status = status.clone();
        tokio::spawn(async move {
            let mut min = usize::MAX;
            let mut reads = 0u64;
            while status.stats().relists < 4 && reads < 5_000_000 {
                min = min.min(store.list().len());
                reads += 1;
                tokio::task::yield_now().await;
            }
            min
        })
    };
    // Force relists while the reader reads (410 on resume; the list is paged: 500
    // per page, so a relist takes several requests).
    server
        .set_fault(Route::watch("configmaps"), Fault::gone().times(3))
        .unwrap();
    // A drop while the watcher is between watches (still relisting) finds nothing to
    // drop: drop again until each relist has happened.
    let first = status.stats().relists;
    for k in 1..=3 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while status.stats().relists < first + k {
            assert!(
                tokio::time::Instant::now() < deadline,
                "relist {k} never came"
            );
            server.drop_watches();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let min = reader.await.unwrap();
    assert_eq!(min, 2000, "a reader saw a partial state");
    assert!(
        status.stats().relists >= 4,
        "relists: {}",
        status.stats().relists
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_ends_with_every_store_equal_to_the_server() {
    let server = Arc::new(ApiServer::start().await.unwrap());
    for i in 0..200 {
        server
            .create(&cm(&format!("ns-{}", i % 5), &format!("cm-{i}"), "a"))
            .unwrap();
    }
    let (store, handle) = full_watch(&server);
    handle.status().ready().await.unwrap();
    // Faults on the watch path: dropped watches, 500s on some lists and 410s.
    server
        .set_fault(Route::watch("configmaps"), Fault::drop_watch_after(25))
        .unwrap();
    server
        .set_fault(Route::list("configmaps"), Fault::status(500).fraction(0.3))
        .unwrap();
    let churn = {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            for step in 0..600usize {
                let i = step * 7 % 260;
                let ns = format!("ns-{}", i % 5);
                let name = format!("cm-{i}");
                match step % 5 {
                    0 => {
                        let _ = server.delete::<ConfigMap>(Some(&ns), &name);
                    }
                    1 | 2 => {
                        let _ = server.upsert(&cm(&ns, &name, ["a", "b", "c"][step % 3]));
                    }
                    3 => {
                        if step % 50 == 3 {
                            server.compact();
                        }
                        let _ = server.upsert(&cm(&ns, &name, "a"));
                    }
                    _ => {
                        let _ = server.create(&cm(&ns, &format!("extra-{step}"), "b"));
                    }
                }
                if step % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    churn.await.unwrap();
    server.clear_faults();
    until("the store converges to the server's objects", || {
        names(store.list().iter().cloned()) == server_names(&server)
    })
    .await;
    // Same objects, same versions, under the right keys.
    for obj in server.list::<ConfigMap>().unwrap() {
        let ns = obj.metadata.namespace.clone().unwrap();
        let team = obj.metadata.labels.as_ref().unwrap()["team"].clone();
        let under = store.get(&[ns.as_str(), team.as_str()]).unwrap();
        let stored = under
            .iter()
            .find(|o| o.metadata.name == obj.metadata.name)
            .expect("stored under its current keys");
        assert_eq!(
            stored.metadata.resource_version,
            obj.metadata.resource_version
        );
    }
    assert!(
        handle.status().stats().watch_errors > 0,
        "the faults did fire"
    );
    store.validate().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_store_fed_by_a_metadata_watch() {
    let server = ApiServer::start().await.unwrap();
    for i in 0..20 {
        let mut s = Secret::default();
        s.metadata.namespace = Some("ns".into());
        s.metadata.name = Some(format!("s-{i:02}"));
        s.string_data = None;
        s.data = Some(BTreeMap::from([(
            "v".to_owned(),
            k8s_openapi::ByteString(format!("v{i}").into_bytes()),
        )]));
        server.create(&s).unwrap();
    }
    let store = Arc::new(
        CachedStore::<Secret>::builder(2)
            .client(server.client())
            .build()
            .unwrap(),
    );
    let handle = watch::spawn_on_demand(
        Api::<PartialObjectMeta<Secret>>::all(server.client()),
        watcher::Config::default(),
        Arc::clone(&store),
        Indexer::new(["metadata.namespace", "metadata.name"]).unwrap(),
        FeedOptions::new("secrets"),
    )
    .unwrap();
    handle.status().ready().await.unwrap();
    assert_eq!(store.len(), 20);
    assert_eq!(store.stats().fetches, 0, "the watch fetched no bodies");
    let got = store.get(&["ns", "s-03"]).await.unwrap();
    assert_eq!(got[0].data.as_ref().unwrap()["v"].0, b"v3");
    // An update at the server reaches readers through the watch's invalidation.
    let mut s = server.get::<Secret>(Some("ns"), "s-03").unwrap().unwrap();
    s.data = Some(BTreeMap::from([(
        "v".to_owned(),
        k8s_openapi::ByteString(b"rotated".to_vec()),
    )]));
    server.replace(&s).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = store.get(&["ns", "s-03"]).await.unwrap();
        if got[0].data.as_ref().unwrap()["v"].0 == b"rotated" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the update never reached the store"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.delete::<Secret>(Some("ns"), "s-03").unwrap();
    until("delete", || store.len() == 19).await;
    assert!(store.get(&["ns", "s-03"]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_versions_are_skipped_and_missing_fields_never_stop_the_watch() {
    let server = ApiServer::start().await.unwrap();
    server.create(&cm("ns", "with-team", "a")).unwrap();
    let mut no_team = cm("ns", "no-team", "a");
    no_team.metadata.labels = None;
    server.create(&no_team).unwrap();
    let (store, handle) = full_watch(&server);
    let status: WatchStatus = handle.status().clone();
    status.ready().await.unwrap();
    // The object without the index label is skipped (and counted), the other stored.
    assert_eq!(store.len(), 1);
    assert_eq!(status.stats().index_errors, 1);
    // An object that loses its index field is removed, not left under its old key.
    let mut lost = server
        .get::<ConfigMap>(Some("ns"), "with-team")
        .unwrap()
        .unwrap();
    lost.metadata.labels = None;
    server.replace(&lost).unwrap();
    until("removal", || store.is_empty()).await;
    // The watch goes on.
    server.create(&cm("ns", "later", "b")).unwrap();
    until("later", || store.len() == 1).await;
    let mut changes = status.changes();
    let g0 = status.generation();
    server.create(&cm("ns", "again", "b")).unwrap();
    let g1 = tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(g1 > g0);
}

#[test]
fn an_unchanged_resource_version_is_skipped() {
    use kube::runtime::watcher::Event;
    let store = Arc::new(MemoryStore::<ConfigMap>::new(2).unwrap());
    let indexer = Indexer::new(["metadata.namespace", "metadata.name"]).unwrap();
    let mut feeder =
        watch::Feeder::new(Arc::clone(&store), indexer, FeedOptions::new("t")).unwrap();
    let status = feeder.status();
    let mut obj = cm("ns", "a", "x");
    obj.metadata.resource_version = Some("5".into());
    obj.metadata.uid = Some("u-a".into());
    feeder.handle(Event::Apply(obj.clone()));
    let first = store.get(&["ns", "a"]).unwrap()[0].clone();
    feeder.handle(Event::Apply(obj.clone()));
    assert_eq!(status.stats().applied, 1);
    assert_eq!(status.stats().unchanged, 1);
    assert!(
        Arc::ptr_eq(&first, &store.get(&["ns", "a"]).unwrap()[0]),
        "not replaced"
    );
    obj.metadata.resource_version = Some("6".into());
    feeder.handle(Event::Apply(obj.clone()));
    assert_eq!(status.stats().applied, 2);
    // Init/InitApply/InitDone: nothing changes until InitDone, then all at once.
    feeder.handle(Event::Init);
    feeder.handle(Event::InitApply(cm("ns", "b", "x")));
    assert_eq!(store.len(), 1, "a relist in progress is not visible");
    assert!(!status.is_ready());
    feeder.handle(Event::InitDone);
    assert!(status.is_ready());
    assert_eq!(
        names(store.list().iter().cloned()),
        [("ns".to_owned(), "b".to_owned())]
    );
    // Delete removes by identity only.
    feeder.handle(Event::Init);
    feeder.handle(Event::InitApply(cm("ns", "c", "x")));
    feeder.handle(Event::Delete(cm("ns", "b", "x")));
    assert!(store.is_empty());
}

/// Relist events out of order (an `InitDone` with no `Init`, a second `InitDone`, an
/// `InitApply` with no `Init`) on one tier's feeder: nothing is emptied, nothing lost.
fn stray_relist_events_on<T, E>(
    store: Arc<T>,
    make: impl Fn(&str) -> E,
    names_of: impl Fn(&T) -> Vec<String>,
) where
    T: watch::Target<E>,
    E: kube::Resource + serde::Serialize + Send + Sync + 'static,
{
    use kube::runtime::watcher::Event;
    let indexer = Indexer::new(["metadata.namespace", "metadata.name"]).unwrap();
    let mut feeder =
        watch::Feeder::new(Arc::clone(&store), indexer, FeedOptions::new("t")).unwrap();
    let status = feeder.status();
    feeder.handle(Event::Apply(make("a")));
    feeder.handle(Event::Apply(make("b")));
    // Used to swap in an empty list.
    feeder.handle(Event::InitDone);
    assert_eq!(
        names_of(&store),
        ["a", "b"],
        "a stray InitDone changes nothing"
    );
    assert_eq!(status.stats().stray_relist_events, 1);
    assert_eq!(status.stats().relists, 0);
    assert!(!status.is_ready(), "no list was completed");
    // A real relist, then its InitDone repeated.
    feeder.handle(Event::Init);
    feeder.handle(Event::InitApply(make("c")));
    feeder.handle(Event::InitDone);
    assert_eq!(names_of(&store), ["c"]);
    assert!(status.is_ready());
    let generation = status.generation();
    feeder.handle(Event::InitDone);
    assert_eq!(
        names_of(&store),
        ["c"],
        "a repeated InitDone changes nothing"
    );
    assert_eq!(status.generation(), generation, "and signals no change");
    // An InitApply with no Init is applied as an Apply: it starts no relist that a
    // later stray InitDone could swap in alone.
    feeder.handle(Event::InitApply(make("d")));
    assert_eq!(names_of(&store), ["c", "d"]);
    feeder.handle(Event::InitDone);
    assert_eq!(names_of(&store), ["c", "d"]);
    let stats = status.stats();
    assert_eq!((stats.stray_relist_events, stats.relists), (4, 1));
    // A repeated Init restarts the relist: what it had buffered is dropped.
    feeder.handle(Event::Init);
    feeder.handle(Event::InitApply(make("e")));
    feeder.handle(Event::Init);
    feeder.handle(Event::InitApply(make("f")));
    feeder.handle(Event::InitDone);
    assert_eq!(names_of(&store), ["f"]);
}

#[tokio::test]
async fn stray_relist_events_never_empty_either_tier() {
    stray_relist_events_on(
        Arc::new(MemoryStore::<ConfigMap>::new(2).unwrap()),
        |n| cm("ns", n, "x"),
        |s| {
            names(s.list().iter().cloned())
                .into_iter()
                .map(|(_, n)| n)
                .collect()
        },
    );
    let server = ApiServer::start().await.unwrap();
    let cached = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .build()
        .unwrap();
    let meta = |n: &str| {
        let mut m = PartialObjectMeta::<Secret>::default();
        m.metadata.namespace = Some("ns".into());
        m.metadata.name = Some(n.into());
        m
    };
    stray_relist_events_on(Arc::new(cached), meta, |s| {
        s.references(&["ns"])
            .unwrap()
            .iter()
            .map(|r| r.name().to_owned())
            .collect()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_signal_debounces_bursts() {
    let server = ApiServer::start().await.unwrap();
    let (store, handle) = full_watch(&server);
    handle.status().ready().await.unwrap();
    let mut changes = handle
        .status()
        .changes()
        .debounce(Duration::from_millis(200));
    let waiter = tokio::spawn(async move { changes.changed().await });
    for i in 0..50 {
        server
            .create(&cm("ns", &format!("burst-{i}"), "a"))
            .unwrap();
    }
    let generation = waiter.await.unwrap().unwrap();
    until("all applied", || store.len() == 50).await;
    // One signal covered the whole burst (it fired once, after the last event): the
    // generation it reports is the last one. (It rises once per batch the feeder
    // writes, so it is not a count of the events.)
    assert_eq!(generation, handle.status().generation());
    assert_eq!(handle.status().stats().applied, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_from_the_example_configuration() {
    let server = ApiServer::start().await.unwrap();
    let config =
        Config::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yaml")).unwrap();
    let mut s = Secret::default();
    s.metadata.namespace = Some("ns".into());
    s.metadata.name = Some("tls".into());
    server.create(&s).unwrap();
    let stores = Stores::start(&config, server.client()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), stores.ready())
        .await
        .unwrap()
        .unwrap();
    let secrets = stores.get("secrets").expect("secrets store");
    assert!(matches!(secrets, AnyStore::OnDemand(_)));
    assert_eq!(secrets.get(&["ns", "tls"]).await.unwrap().len(), 1);
    assert!(matches!(stores.get("ingresses"), Some(AnyStore::Full(_))));
    assert_eq!(stores.get("ingresses").unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_shards_reach_both_tiers() {
    let server = ApiServer::start().await.unwrap();
    let config = Config::from_yaml(
        "watched_resources:
  configmaps:
    api_version: v1
    kind: ConfigMap
    index_by: [metadata.namespace, metadata.name]
    store: full
    index_shards: 16
  secrets:
    api_version: v1
    kind: Secret
    index_by: [metadata.namespace, metadata.name]
    store: on-demand
    index_shards: 64
  services:
    api_version: v1
    kind: Service
    index_by: [metadata.namespace, metadata.name]
    store: full
",
    )
    .unwrap();
    let stores = Stores::start(&config, server.client()).unwrap();
    let shards = |name: &str| match stores.get(name).expect(name) {
        AnyStore::Full(s) => s.shards(),
        AnyStore::OnDemand(s) => s.shards(),
    };
    assert_eq!(shards("configmaps"), 16);
    assert_eq!(shards("secrets"), 64);
    assert!(shards("services") >= 1024, "the default");
}

/// `Some(was_ready)` for a readiness that failed because the writer is gone.
fn dropped(r: Result<(), WriterDropped>) -> Option<bool> {
    r.err().map(|e| e.was_ready)
}

/// Waits (bounded) for `f` to resolve.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_watch_feeds_the_store_and_passes_every_event_on_unchanged() {
    use futures::StreamExt;
    use k8s_store::watch::FeedStreamExt;
    use k8s_store_sim::Verb;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::Event;
    let server = ApiServer::start().await.unwrap();
    for i in 0..20 {
        server.create(&cm("ns", &format!("c-{i:02}"), "x")).unwrap();
    }
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    // The store drops the `team` label; what is passed on keeps it.
    let strip: watch::Stripper<ConfigMap> = Arc::new(|c: &mut ConfigMap| c.metadata.labels = None);
    let feeder = watch::Feeder::new(
        store,
        Indexer::new(["metadata.namespace", "metadata.name"]).unwrap(),
        FeedOptions::new("configmaps").strip(strip),
    )
    .unwrap();
    let status = feeder.status();
    let events = watcher(
        Api::<ConfigMap>::all(server.client()),
        watcher::Config::default(),
    )
    .default_backoff()
    .feed(feeder);
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let consumer = tokio::spawn({
        let reader = reader.clone();
        async move {
            let mut events = std::pin::pin!(events);
            let mut listed = Vec::new();
            while let Some(event) = events.next().await {
                let stored = |obj: &ConfigMap| {
                    let name = obj.metadata.name.as_deref().unwrap();
                    let stored = reader
                        .get_one(&["ns", name])
                        .unwrap()
                        .expect("stored first");
                    assert_eq!(
                        stored.metadata.resource_version,
                        obj.metadata.resource_version
                    );
                    assert!(stored.metadata.labels.is_none(), "stripped in the store");
                    assert!(obj.metadata.labels.is_some(), "passed on unchanged");
                    name.to_owned()
                };
                match event.expect("no watch errors") {
                    // A relist's objects reach the store together, at its InitDone
                    // (readers never see half a list), and it is passed on after that.
                    Event::Init => assert!(!reader.is_ready()),
                    Event::InitApply(obj) => listed.push(obj),
                    Event::InitDone => {
                        assert!(reader.is_ready(), "ready before InitDone is passed on");
                        for obj in listed.drain(..) {
                            seen_tx.send(stored(&obj)).unwrap();
                        }
                    }
                    // Every other event is applied before it is passed on.
                    Event::Apply(obj) => seen_tx.send(stored(&obj)).unwrap(),
                    Event::Delete(_) => {}
                }
            }
        }
    });
    let mut names = Vec::new();
    for _ in 0..20 {
        names.push(within("the initial objects", seen.recv()).await.unwrap());
    }
    names.sort();
    assert_eq!(names[0], "c-00");
    within("ready", reader.ready()).await.unwrap();
    assert!(status.is_ready());
    server.create(&cm("ns", "late", "x")).unwrap();
    assert_eq!(within("a new object", seen.recv()).await.unwrap(), "late");
    assert_eq!(reader.len(), 21);
    let counters = server.counters();
    assert_eq!(counters.requests(Verb::Watch, "configmaps"), 1, "one watch");
    assert_eq!(counters.requests(Verb::List, "configmaps"), 1, "one list");
    // Dropping the stream drops the feeder and the writer: readers keep the last state
    // and say so.
    consumer.abort();
    let _ = consumer.await;
    assert_eq!(
        dropped(within("readiness", reader.ready()).await),
        Some(true)
    );
    assert_eq!(dropped(status.ready().await), Some(true));
    assert_eq!(reader.len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_watch_feeds_the_on_demand_tier_and_passes_events_on() {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let server = ApiServer::start().await.unwrap();
    for i in 0..5 {
        let mut s = Secret::default();
        s.metadata.namespace = Some("ns".into());
        s.metadata.name = Some(format!("s-{i}"));
        server.create(&s).unwrap();
    }
    let store = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .build()
        .unwrap();
    let reader = store.reader();
    let feeder = watch::Feeder::new(
        store,
        Indexer::new(["metadata.namespace", "metadata.name"]).unwrap(),
        FeedOptions::new("secrets"),
    )
    .unwrap();
    let metas_stream = watch::reflect(
        feeder,
        watcher(
            Api::<PartialObjectMeta<Secret>>::all(server.client()),
            watcher::Config::default(),
        ),
    )
    .applied_objects();
    // The stream is driven on its own task (as a Controller drives it).
    let (tx, mut metas) = tokio::sync::mpsc::unbounded_channel();
    let consumer = tokio::spawn(async move {
        let mut stream = std::pin::pin!(metas_stream);
        while let Some(meta) = stream.next().await {
            tx.send(meta.unwrap().metadata.name.unwrap()).unwrap();
        }
    });
    let mut names = Vec::new();
    for _ in 0..5 {
        names.push(within("a reference", metas.recv()).await.unwrap());
    }
    // The list's objects are swapped in at its InitDone, which `applied_objects` does
    // not yield: wait for readiness, then every listed name has its reference.
    within("ready", reader.ready()).await.unwrap();
    for name in &names {
        assert_eq!(reader.references(&["ns", name.as_str()]).unwrap().len(), 1);
    }
    // A later event is applied before it is passed on.
    let mut s = Secret::default();
    s.metadata.namespace = Some("ns".into());
    s.metadata.name = Some("late".into());
    server.create(&s).unwrap();
    assert_eq!(
        within("the new reference", metas.recv()).await.unwrap(),
        "late"
    );
    assert_eq!(reader.references(&["ns", "late"]).unwrap().len(), 1);
    consumer.abort();
    // The reader fetches bodies through the store's cache.
    assert_eq!(reader.get(&["ns"]).await.unwrap().len(), 6);
    assert_eq!(reader.stats().fetches, 6);
    assert_eq!(reader.get(&["ns", "s-0"]).await.unwrap().len(), 1);
    assert_eq!(reader.stats().fetches, 6, "a hit");
}

#[tokio::test]
async fn readiness_fails_when_the_feed_ends_before_or_after_its_first_list() {
    use kube::runtime::watcher::Event;
    let feed = |events: Vec<Event<ConfigMap>>| {
        let store = MemoryStore::<ConfigMap>::new(2).unwrap();
        let reader = store.reader();
        let feeder = watch::Feeder::new(
            store,
            Indexer::new(["metadata.namespace", "metadata.name"]).unwrap(),
            FeedOptions::new("t"),
        )
        .unwrap();
        let status = feeder.status();
        let run = feeder.run(futures::stream::iter(events.into_iter().map(Ok)));
        (reader, status, run)
    };
    // A stream that ends inside its first list: never ready, and says so.
    let (reader, status, run) = feed(vec![Event::Init, Event::InitApply(cm("ns", "a", "x"))]);
    let waiter = tokio::spawn({
        let reader = reader.clone();
        async move { reader.ready().await }
    });
    run.await;
    assert_eq!(
        dropped(within("reader readiness", waiter).await.unwrap()),
        Some(false)
    );
    assert_eq!(dropped(status.ready().await), Some(false));
    assert!(reader.is_empty(), "the half list never reached the store");
    // A stream that ends after a complete list: readers keep the state.
    let (reader, status, run) = feed(vec![
        Event::Init,
        Event::InitApply(cm("ns", "a", "x")),
        Event::InitDone,
    ]);
    run.await;
    assert_eq!(dropped(reader.ready().await), Some(true));
    assert_eq!(dropped(status.ready().await), Some(true));
    assert_eq!(reader.len(), 1);
    assert!(!reader.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_watch_before_its_first_list_fails_readiness_instead_of_hanging() {
    let server = ApiServer::start().await.unwrap();
    server
        .set_fault(Route::list("configmaps"), Fault::status(500))
        .unwrap();
    let (reader, handle) = full_watch(&server);
    let status = handle.status().clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!status.is_ready() && !reader.is_ready(), "every list fails");
    drop(handle); // aborts the task that owns the feeder and the writer
    assert_eq!(
        dropped(within("watch readiness", status.ready()).await),
        Some(false)
    );
    assert_eq!(
        dropped(within("reader readiness", reader.ready()).await),
        Some(false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_ready_fails_when_a_watch_is_gone() {
    let server = ApiServer::start().await.unwrap();
    let config = Config::from_yaml(
        "watched_resources:\n  configmaps:\n    api_version: v1\n    kind: ConfigMap\n    \
         index_by: [metadata.namespace, metadata.name]\n    store: full\n",
    )
    .unwrap();
    server
        .set_fault(Route::list("configmaps"), Fault::status(500))
        .unwrap();
    let stores = Stores::start(&config, server.client()).unwrap();
    let store = stores.get("configmaps").unwrap().clone();
    drop(stores); // stops the watches
    assert_eq!(
        dropped(within("readiness", store.ready()).await),
        Some(false)
    );
}

#[test]
fn a_relist_leaves_the_live_store_alone_until_its_init_done() {
    use kube::runtime::watcher::Event;
    let store = MemoryStore::<ConfigMap>::new(2).unwrap();
    let reader = store.reader();
    let indexer = Indexer::new(["metadata.namespace", "metadata.labels['team']"]).unwrap();
    let mut feeder = watch::Feeder::new(store, indexer, FeedOptions::new("t")).unwrap();
    feeder.handle(Event::Apply(cm("ns", "a", "x")));
    feeder.handle(Event::Apply(cm("ns", "b", "x")));
    let mut unlabelled = cm("ns", "a", "x");
    unlabelled.metadata.labels = None;
    // During a relist, an object that cannot be indexed used to be deleted from the
    // live store at once: readers saw the relist half applied.
    feeder.handle(Event::Init);
    feeder.handle(Event::InitApply(unlabelled.clone()));
    feeder.handle(Event::InitApply(cm("ns", "b", "x")));
    assert_eq!(reader.len(), 2, "the old state until InitDone");
    assert_eq!(feeder.status().stats().index_errors, 1);
    feeder.handle(Event::InitDone);
    assert_eq!(
        names(reader.list().iter().cloned()),
        [("ns".to_owned(), "b".to_owned())]
    );
    // Outside a relist it is removed at once (nothing stays under its old key).
    feeder.handle(Event::Apply(unlabelled));
    feeder.handle(Event::Apply(cm("ns", "c", "x")));
    let mut c = cm("ns", "c", "x");
    c.metadata.labels = None;
    feeder.handle(Event::Apply(c));
    assert_eq!(
        names(reader.list().iter().cloned()),
        [("ns".to_owned(), "b".to_owned())]
    );
}
